// Package statestore holds the instance's single-owner lock and opens the
// pool whatsmeow keeps its session in, both in the instance's own schema,
// reached as the instance's own role.
//
// One owner at a time: the lock is a session-level advisory lock,
// pg_advisory_lock(LockClass, instanceId), held by ONE dedicated connection
// (a *pgx.Conn, never a pool: a pool would silently replace a dead
// connection, and the lock with it) for the worker's whole life. A
// heartbeat checks every 2 s that this connection is alive, is still the
// same backend and still holds the lock; when any of that fails the worker
// must stop writing at once (it exits with 1).
package statestore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// LockClass is the first key of the state lock: 0x77677301, "wgs" and 1 (the TypeScript worker's STATE_LOCK_CLASS).
const LockClass = 2003268353

// Defaults of LockOptions.
const (
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultHeartbeatTimeout  = 2 * time.Second
	DefaultConnectTimeout    = 10 * time.Second
)

// LockOptions configure Acquire.
type LockOptions struct {
	// DSN is secret (the role's password is in it); only its host, database and user are logged.
	DSN        string
	Schema     string
	InstanceID int64
	Log        zerolog.Logger
	// OnWaiting is called once when another owner holds the lock; Acquire then waits for it.
	OnWaiting func()
	// OnLost is called once, on the heartbeat goroutine, when the connection or the lock is lost.
	OnLost            func(error)
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	ConnectTimeout    time.Duration
}

// Lock is the held instance lock.
type Lock struct {
	opts       LockOptions
	log        zerolog.Logger
	mu         sync.Mutex
	conn       *pgx.Conn
	backendPID uint32
	// Waited is true when another worker held the lock at first and this one waited.
	Waited bool
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

// ConnConfig parses the DSN into a pgx config with search_path set to the
// schema, so every unqualified table lands there.
func ConnConfig(dsn, schema, applicationName string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx errors may quote the DSN: never pass them on.
		return nil, errors.New("WGS_STATE_DSN cannot be parsed as a Postgres URL")
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["search_path"] = schema
	cfg.RuntimeParams["application_name"] = applicationName
	// The server's side of the lock: a worker that vanished without closing its socket
	// lets go of the instance within about 25 s, not the OS's 2 h.
	cfg.RuntimeParams["tcp_keepalives_idle"] = "10"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "5"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	return cfg, nil
}

// Acquire connects, checks the schema and takes the instance lock, waiting
// for a previous owner to let go. Cancelling ctx while it waits ends the
// connection and returns an error.
func Acquire(ctx context.Context, opts LockOptions) (*Lock, error) {
	if opts.HeartbeatInterval == 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if opts.HeartbeatTimeout == 0 {
		opts.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	log := opts.Log.With().Str("component", "state").Logger()
	cfg, err := ConnConfig(opts.DSN, opts.Schema, "wgs-whatsmeow-lock")
	if err != nil {
		return nil, err
	}
	cfg.ConnectTimeout = opts.ConnectTimeout
	where := fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)

	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the state database %s: %w", where, redact(err, opts.DSN))
	}
	fail := func(err error) (*Lock, error) {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
		return nil, err
	}
	var current *string
	if err := conn.QueryRow(ctx, "select current_schema()").Scan(&current); err != nil {
		return fail(fmt.Errorf("check the state schema: %w", err))
	}
	if current == nil || *current != opts.Schema {
		got := "none"
		if current != nil {
			got = *current
		}
		return fail(fmt.Errorf("schema %s does not exist or its role cannot use it (current_schema: %s)", opts.Schema, got))
	}
	l := &Lock{opts: opts, log: log, conn: conn, backendPID: conn.PgConn().PID(), stop: make(chan struct{}), done: make(chan struct{})}
	log.Info().Str("db", where).Str("schema", opts.Schema).Uint32("pid", l.backendPID).Msg("state store connected; taking the instance lock")

	var locked bool
	if err := conn.QueryRow(ctx, "select pg_try_advisory_lock($1::int4, $2::int4)", LockClass, opts.InstanceID).Scan(&locked); err != nil {
		return fail(fmt.Errorf("try the instance lock: %w", err))
	}
	if !locked {
		l.Waited = true
		log.Warn().Str("schema", opts.Schema).Msg("another worker holds the instance lock; waiting for the previous owner")
		if opts.OnWaiting != nil {
			opts.OnWaiting()
		}
		started := time.Now()
		if _, err := conn.Exec(ctx, "select pg_advisory_lock($1::int4, $2::int4)", LockClass, opts.InstanceID); err != nil {
			if ctx.Err() != nil {
				return fail(fmt.Errorf("waiting for the instance lock was aborted: %w", ctx.Err()))
			}
			return fail(fmt.Errorf("wait for the instance lock: %w", err))
		}
		log.Info().Dur("waited", time.Since(started)).Msg("previous owner gone")
	}
	if ctx.Err() != nil {
		return fail(fmt.Errorf("taking the instance lock was aborted: %w", ctx.Err()))
	}
	log.Info().Str("schema", opts.Schema).Uint32("pid", l.backendPID).Bool("waited", l.Waited).Msg("instance lock held")
	go l.heartbeat()
	return l, nil
}

func (l *Lock) heartbeat() {
	defer close(l.done)
	t := time.NewTicker(l.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if err := l.check(); err != nil {
			select {
			case <-l.stop:
				return // closing: not a loss
			default:
			}
			l.log.Error().Err(err).Msg("state connection lost; the instance lock is gone")
			if l.opts.OnLost != nil {
				l.opts.OnLost(err)
			}
			return
		}
	}
}

// check: alive, still the same backend, and the lock still granted to it.
func (l *Lock) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return errors.New("the state connection is closed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.HeartbeatTimeout)
	defer cancel()
	var pid uint32
	var held bool
	err := l.conn.QueryRow(ctx, `
		select pg_backend_pid(), exists (
			select 1 from pg_locks
			where locktype = 'advisory' and pid = pg_backend_pid() and granted
				and classid = $1::int4::oid and objid = $2::int4::oid and objsubid = 2
		)`, LockClass, l.opts.InstanceID).Scan(&pid, &held)
	if err != nil {
		return fmt.Errorf("state connection heartbeat: %w", err)
	}
	if pid != l.backendPID {
		return fmt.Errorf("state connection changed backend (%d → %d)", l.backendPID, pid)
	}
	if !held {
		return errors.New("the instance lock is no longer held by the state connection")
	}
	return nil
}

// Close stops the heartbeat, releases the lock and ends the connection,
// within about `wait`; it never fails (ending the session releases the lock anyway).
func (l *Lock) Close(wait time.Duration) {
	l.once.Do(func() {
		close(l.stop)
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.conn == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if _, err := l.conn.Exec(ctx, "select pg_advisory_unlock($1::int4, $2::int4)", LockClass, l.opts.InstanceID); err != nil {
			l.log.Warn().Err(err).Msg("releasing the instance lock failed; ending the connection releases it")
		}
		_ = l.conn.Close(ctx)
		l.conn = nil
		l.log.Info().Msg("state store closed; instance lock released")
	})
}

// redact removes the DSN's password from an error text, should a driver quote it.
func redact(err error, dsn string) error {
	cfg, perr := pgx.ParseConfig(dsn)
	if perr != nil || cfg.Password == "" {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, cfg.Password) {
		return err
	}
	return errors.New(strings.ReplaceAll(msg, cfg.Password, "<redacted>"))
}
