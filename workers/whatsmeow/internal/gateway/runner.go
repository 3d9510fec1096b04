package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

// Executor runs one command; failures are *protocol.CommandError (other errors become `internal`).
type Executor func(ctx context.Context, name string, args json.RawMessage) (map[string]any, error)

// CommandTimeout bounds one command (a media download plus upload fits easily).
const CommandTimeout = 3 * time.Minute

// maxQueuedCommands bounds the queue; the gateway redelivers what is dropped.
const maxQueuedCommands = 4096

type job struct {
	cmd   protocol.Command
	reply func(protocol.ResultFrame, bool)
}

// Runner runs the gateway's commands one at a time, in arrival order, and
// answers each commandId once: a redelivered command gets the cached
// result. The cache is consulted when the command's turn comes, so a copy
// that arrives while the original runs waits for it instead of running twice.
// Commands are held until Open (the provider starts after the socket).
type Runner struct {
	results  *ResultCache
	log      zerolog.Logger
	jobs     chan job
	openCh   chan struct{}
	openOnce sync.Once
	closed   atomic.Bool
	busy     chan struct{}
	exec     atomic.Pointer[Executor]
	ctx      context.Context
}

// NewRunner starts the runner's goroutine; it ends when ctx does.
func NewRunner(ctx context.Context, results *ResultCache, log zerolog.Logger) *Runner {
	r := &Runner{results: results, log: log, jobs: make(chan job, maxQueuedCommands), openCh: make(chan struct{}), busy: make(chan struct{}, 1), ctx: ctx}
	go r.loop()
	return r
}

// Open sets the executor and lets queued and later commands run.
func (r *Runner) Open(exec Executor) {
	r.exec.Store(&exec)
	r.openOnce.Do(func() { close(r.openCh) })
}

// Close stops starting commands (the gateway keeps them queued for the next
// worker) and waits, at most `wait`, for the running one to reply.
func (r *Runner) Close(wait time.Duration) {
	r.closed.Store(true)
	r.openOnce.Do(func() { close(r.openCh) })
	select {
	case r.busy <- struct{}{}:
		<-r.busy
	case <-time.After(wait):
		r.log.Warn().Dur("after", wait).Msg("running command did not finish in time")
	}
}

// Submit queues a command; reply gets its result and whether it came from the cache.
func (r *Runner) Submit(cmd protocol.Command, reply func(protocol.ResultFrame, bool)) {
	select {
	case r.jobs <- job{cmd: cmd, reply: reply}:
	default:
		r.log.Warn().Int64("commandId", cmd.CommandID).Msg("command queue full; dropping the command (the gateway redelivers it)")
	}
}

func (r *Runner) loop() {
	select {
	case <-r.openCh:
	case <-r.ctx.Done():
		return
	}
	for {
		select {
		case <-r.ctx.Done():
			return
		case j := <-r.jobs:
			r.handle(j)
		}
	}
}

func (r *Runner) handle(j job) {
	id, name := j.cmd.CommandID, j.cmd.Name
	if cached, ok := r.results.Get(id); ok {
		r.log.Info().Int64("commandId", id).Str("command", name).Msg("command redelivered; answering from cache")
		j.reply(cached, true)
		return
	}
	if r.closed.Load() {
		r.log.Info().Int64("commandId", id).Str("command", name).Msg("worker stopping; command left to the next worker")
		return
	}
	r.busy <- struct{}{}
	defer func() { <-r.busy }()
	result := r.execute(j.cmd)
	r.results.Set(result)
	j.reply(result, false)
}

func (r *Runner) execute(cmd protocol.Command) (result protocol.ResultFrame) {
	log := r.log.With().Int64("commandId", cmd.CommandID).Str("command", cmd.Name).Logger()
	exec := r.exec.Load()
	if exec == nil {
		return protocol.Failure(cmd.CommandID, protocol.CodeNotReady, "the provider is not running")
	}
	defer func() {
		if p := recover(); p != nil {
			log.Error().Interface("panic", p).Msg("command crashed")
			result = protocol.Failure(cmd.CommandID, protocol.CodeInternal, fmt.Sprintf("%s failed unexpectedly: %v", cmd.Name, p))
		}
	}()
	ctx, cancel := context.WithTimeout(r.ctx, CommandTimeout)
	defer cancel()
	started := time.Now()
	data, err := (*exec)(ctx, cmd.Name, cmd.Args)
	if err == nil {
		log.Info().Dur("took", time.Since(started)).Msg("command executed")
		return protocol.Success(cmd.CommandID, data)
	}
	var ce *protocol.CommandError
	if errors.As(err, &ce) {
		ev := log.Info()
		if ce.Err != nil {
			ev = ev.AnErr("cause", ce.Err)
		}
		ev.Str("code", ce.Code).Str("message", ce.Message).Msg("command failed")
		return protocol.Failure(cmd.CommandID, ce.Code, ce.Message)
	}
	log.Error().Err(err).Msg("command failed unexpectedly")
	return protocol.Failure(cmd.CommandID, protocol.CodeInternal, fmt.Sprintf("%s failed unexpectedly: %v", cmd.Name, err))
}
