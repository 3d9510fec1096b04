// Package app wires the worker: config → logger → gateway connection (it
// reports 'starting' and holds commands) → instance lock (waits while a
// previous owner lives) → state pool → provider → commands. Stop: commands,
// provider, socket, pool, lock, in that order, within HardExit.
package app

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/wgs/whatsmeow-worker/internal/config"
	"github.com/wgs/whatsmeow-worker/internal/gateway"
	"github.com/wgs/whatsmeow-worker/internal/health"
	"github.com/wgs/whatsmeow-worker/internal/protocol"
	"github.com/wgs/whatsmeow-worker/internal/statestore"
	"github.com/wgs/whatsmeow-worker/internal/wa"
)

// Version is sent in hello.workerVersion.
const Version = "0.1.0"

// Timings of a graceful stop (the TypeScript worker's values).
const (
	HardExit        = 5 * time.Second
	parentCheck     = 500 * time.Millisecond
	failedReport    = 2 * time.Second
	commandDrain    = 1500 * time.Millisecond
	providerStop    = 500 * time.Millisecond
	socketClose     = 1000 * time.Millisecond
	storeClose      = 1500 * time.Millisecond
	providerStartup = 60 * time.Second
)

// NewLogger writes JSON lines to w with the worker's base fields.
func NewLogger(w io.Writer, level string, instanceID int64) zerolog.Logger {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	zerolog.DurationFieldUnit = time.Millisecond
	zerolog.DurationFieldInteger = true
	lvl := zerolog.InfoLevel
	switch level {
	case "silent":
		lvl = zerolog.Disabled
	case "fatal":
		lvl = zerolog.FatalLevel
	default:
		if l, err := zerolog.ParseLevel(level); err == nil {
			lvl = l
		}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("service", "wgs-worker").
		Int64("instanceId", instanceID).Str("provider", wa.Name).Logger()
}

type worker struct {
	cfg  *config.Config
	log  zerolog.Logger
	conn *gateway.Conn

	openCtx    context.Context
	cancelOpen context.CancelFunc

	mu       sync.Mutex
	stopping bool
	lock     *statestore.Lock
	db       *sql.DB
	provider *wa.Provider
	exit     chan int
}

// Run runs the worker until it stops and returns the process exit code.
func Run(getenv func(string) string) int {
	cfg, err := config.Load(getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wgs worker failed to start: %s\n", strings.Join(strings.Fields(err.Error()), " "))
		return 1
	}
	log := NewLogger(os.Stderr, cfg.LogLevel, cfg.InstanceID)
	w := &worker{cfg: cfg, log: log, exit: make(chan int, 1)}
	w.openCtx, w.cancelOpen = context.WithCancel(context.Background())
	w.conn = gateway.New(gateway.Options{
		URLs: gateway.DialOrder(cfg.WorkerURLs, cfg.InstanceID), InstanceID: cfg.InstanceID, Token: cfg.Token, Provider: wa.Name, WorkerVersion: Version,
		Log: log, Exit: func(code int) { w.shutdown(code, "gateway closed the connection for good") },
	})

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for s := range sigs {
			if w.isStopping() {
				os.Exit(1) // a second signal means "now"
			}
			w.shutdown(0, s.String())
		}
	}()
	if cfg.ExitWithParent {
		go w.watchParent()
	}

	log.Info().Interface("config", cfg.Redacted()).Msg("worker starting")
	// The gateway hears 'starting' (and why) while the worker waits for the lock.
	w.conn.Start()
	if path := getenv("WGS_HEALTH_FILE"); path != "" {
		go health.Write(w.openCtx, path, health.WriteEvery, func() bool {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.provider != nil && !w.stopping && w.conn.Ready()
		})
	}
	go w.startup()
	return <-w.exit
}

func (w *worker) isStopping() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopping
}

// watchParent: a worker orphaned by a killed gateway would hold the instance's lock; it leaves with its parent.
func (w *worker) watchParent() {
	parent := os.Getppid()
	t := time.NewTicker(parentCheck)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != parent {
			w.shutdown(0, "parent process gone")
			return
		}
	}
}

func (w *worker) startup() {
	lock, err := statestore.Acquire(w.openCtx, statestore.LockOptions{
		DSN: w.cfg.StateDSN, Schema: w.cfg.StateSchema, InstanceID: w.cfg.InstanceID, Log: w.log,
		OnWaiting: func() { w.conn.SetState(protocol.StateStarting, "waiting for previous owner") },
		// Another worker may own the instance from now on: not one more write, not a graceful stop.
		OnLost: func(err error) {
			w.log.Error().Err(err).Msg("lost the state connection and the instance lock; exiting")
			os.Exit(1)
		},
	})
	if err != nil {
		if w.isStopping() {
			return // aborted by a stop; shutdown() exits
		}
		w.fail("state store unavailable", err)
		return
	}
	w.mu.Lock()
	w.lock = lock
	stopping := w.stopping
	w.mu.Unlock()
	if stopping {
		return // the lock came with a stop signal; shutdown() releases it
	}

	ctx, cancel := context.WithTimeout(w.openCtx, providerStartup)
	defer cancel()
	db, err := statestore.OpenPool(ctx, w.cfg.StateDSN, w.cfg.StateSchema)
	if err != nil {
		w.fail("state store unavailable", err)
		return
	}
	provider := wa.New(wa.Options{DB: db, Reporter: w.conn, Log: w.log, WhatsAppURL: w.cfg.WhatsAppURL, RootPublicKey: w.cfg.RootPublicKey, MediaAllowPrivate: w.cfg.MediaAllowPrivate})
	w.mu.Lock()
	w.db = db
	if w.stopping {
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	if err := provider.Start(ctx); err != nil {
		w.fail("the whatsmeow store cannot be opened", err)
		return
	}
	w.mu.Lock()
	w.provider = provider
	w.mu.Unlock()
	w.conn.AcceptCommands(provider.Execute)
}

// fail reports a start-up failure to the gateway (bounded) and exits with 1.
func (w *worker) fail(what string, err error) {
	w.log.Error().Err(err).Msg(what)
	w.conn.SetState(protocol.StateFailed, fmt.Sprintf("%s: %v", what, err))
	deadline := time.Now().Add(failedReport)
	for !w.conn.Ready() && !w.isStopping() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	w.shutdown(1, what)
}

// shutdown: no new commands (the running one may finish), provider, socket
// (close 1000), pool, lock, exit. Each step is bounded; the whole stop by HardExit.
func (w *worker) shutdown(code int, why string) {
	w.mu.Lock()
	if w.stopping {
		w.mu.Unlock()
		return
	}
	w.stopping = true
	w.mu.Unlock()
	w.log.Info().Str("why", why).Int("code", code).Msg("worker stopping")
	time.AfterFunc(HardExit, func() {
		w.log.Error().Dur("after", HardExit).Msg("graceful stop took too long; exiting")
		os.Exit(1)
	})
	w.cancelOpen()
	go func() {
		w.conn.StopCommands(commandDrain)
		w.mu.Lock()
		provider, db, lock := w.provider, w.db, w.lock
		w.mu.Unlock()
		if provider != nil {
			provider.Stop(providerStop)
		}
		w.conn.Stop(socketClose)
		if db != nil {
			_ = db.Close()
		}
		if lock != nil {
			lock.Close(storeClose)
		}
		w.exit <- code
	}()
}
