// Package gateway is the worker's one WebSocket to the gateway (protocol v1,
// see workers/protocol/README.md). It dials, says hello, and after each
// welcome flushes what the gateway may have missed: the latest state, the
// pending QR, every unacked event and the results never sent. It reconnects
// until stopped, moving through the gateway URLs (failover.go: the next one at
// once, backoff after a whole round failed); the provider keeps working while
// disconnected and reports through the Reporter methods, which never block
// for long.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/wgs/whatsmeow-worker/internal/backoff"
	"github.com/wgs/whatsmeow-worker/internal/protocol"
	"github.com/wgs/whatsmeow-worker/internal/usage"
)

// Reporter is how a provider reports the WhatsApp session to the gateway.
// Calls never fail; while the gateway is away the connection keeps the
// latest state and QR and every event, in order.
type Reporter interface {
	SetState(state protocol.State, reason string)
	// SetQR replaces the pending QR code.
	SetQR(code string, expiresAt time.Time)
	// Emit queues an event the gateway must store; it is resent until acked.
	Emit(ev protocol.WorkerEvent)
	// Phone is the instance's phone from the last welcome ("" before the first).
	Phone() string
}

// Options configure a Conn. Zero durations take the defaults below.
type Options struct {
	// URLs are the full WebSocket URLs (a gateway base + /internal/workers/ws
	// each), in the order to try them (DialOrder): one per gateway replica.
	URLs       []string
	InstanceID int64
	// Token is secret: it is sent in the hello frame only.
	Token         string
	Provider      string
	WorkerVersion string
	Log           zerolog.Logger
	// Exit is called (once, on its own goroutine) when the gateway says this worker must
	// go: 4401 and 4426 with 1, 4409 with 0.
	Exit func(code int)
	// PingInterval: how often the worker pings (with its usage) after the
	// first ping, which follows each welcome.
	PingInterval time.Duration
	// Usage is what the pings report (default: this process, usage.Read); nil leaves it out.
	Usage func() *protocol.Usage
	// IdleTimeout: with no frame at all for this long the socket counts as dead.
	IdleTimeout time.Duration
	// DialTimeout: a dial (TCP, TLS and upgrade) that has not finished after
	// this long is abandoned for the next URL.
	DialTimeout  time.Duration
	WriteTimeout time.Duration
	Backoff      backoff.Policy
	MaxEvents    int
	MaxResults   int
}

// Defaults of Options.
const (
	DefaultPingInterval = 15 * time.Second
	DefaultIdleTimeout  = 45 * time.Second
	DefaultDialTimeout  = 10 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	dropWarnEvery       = 1000
)

// Conn is the gateway connection. Create it with New, then Start.
type Conn struct {
	opts    Options
	log     zerolog.Logger
	Events  *EventBuffer
	Results *ResultCache
	runner  *Runner

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	ws        *websocket.Conn
	url       string // the URL ws was dialled at
	welcomed  bool
	stopped   bool
	state     protocol.StateFrame
	qr        *protocol.QRFrame
	qrExpires time.Time
	phone     string
}

var _ Reporter = (*Conn)(nil)

// New prepares a connection; nothing is dialled before Start.
func New(opts Options) *Conn {
	if opts.PingInterval == 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.Backoff.Base == 0 {
		opts.Backoff = backoff.Gateway
	}
	if opts.MaxEvents == 0 {
		opts.MaxEvents = MaxBufferedEvents
	}
	if opts.MaxResults == 0 {
		opts.MaxResults = MaxCachedResults
	}
	if opts.Usage == nil {
		opts.Usage = processUsage(opts.Log)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := opts.Log.With().Str("component", "connection").Logger()
	results := NewResultCache(opts.MaxResults)
	return &Conn{
		opts:    opts,
		log:     log,
		Events:  NewEventBuffer(opts.MaxEvents),
		Results: results,
		runner:  NewRunner(ctx, results, opts.Log.With().Str("component", "commands").Logger()),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		state:   protocol.StateFrame{Type: "state", State: protocol.StateStarting},
	}
}

// Start dials the gateway; it reconnects on its own until Stop.
func (c *Conn) Start() { go c.run() }

// AcceptCommands runs the commands held since the start and every later one.
func (c *Conn) AcceptCommands(exec Executor) { c.runner.Open(exec) }

// StopCommands: no command starts from now on; waits (at most `wait`) for the running one.
func (c *Conn) StopCommands(wait time.Duration) { c.runner.Close(wait) }

// Ready is true between a welcome and the next disconnect.
func (c *Conn) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.welcomed && c.ws != nil
}

// Stop ends reconnecting and closes the socket with 1000; the whole stop
// takes at most `wait` even when the gateway never answers the close.
func (c *Conn) Stop(wait time.Duration) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	c.mu.Lock()
	c.stopped = true
	ws := c.ws
	c.mu.Unlock()
	if ws != nil {
		closed := make(chan struct{})
		go func() {
			_ = ws.Close(websocket.StatusNormalClosure, "worker stopping")
			close(closed)
		}()
		select {
		case <-closed:
		case <-deadline.C:
			// The close frame is out (or stuck); the process is about to end anyway.
			c.log.Warn().Dur("after", wait).Msg("the gateway did not answer the close in time")
		}
	}
	c.cancel()
	select {
	case <-c.done:
	case <-deadline.C:
	}
	c.log.Info().Msg("disconnected from gateway")
}

// ------------------------------------------------------------ provider side

// SetState records and reports the session state.
func (c *Conn) SetState(state protocol.State, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = protocol.StateFrame{Type: "state", State: state, Reason: reason}
	// A QR belongs to the 'qr' state; any other state makes it stale.
	if state != protocol.StateQR {
		c.qr = nil
	}
	c.log.Info().Str("state", string(state)).Str("reason", reason).Msg("session state")
	c.sendIfReadyLocked(c.state)
}

// SetQR records and reports a QR code.
func (c *Conn) SetQR(code string, expiresAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.qr = &protocol.QRFrame{Type: "qr", Code: code, ExpiresAt: protocol.Timestamp(expiresAt)}
	c.qrExpires = expiresAt
	if c.state.State == protocol.StateQR {
		c.sendIfReadyLocked(*c.qr)
	}
}

// Emit buffers an event until acked and sends it when welcomed.
func (c *Conn) Emit(ev protocol.WorkerEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	frame, dropped := c.Events.Push(ev)
	if dropped != nil && (c.Events.Dropped == 1 || c.Events.Dropped%dropWarnEvery == 0) {
		c.log.Warn().Int("dropped", c.Events.Dropped).Int("buffered", c.Events.Len()).Str("droppedEventId", dropped.EventID).
			Msg("event buffer full while the gateway is away; dropping the oldest events")
	}
	c.sendIfReadyLocked(frame)
}

// Phone is the instance's phone from the last welcome.
func (c *Conn) Phone() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.phone
}

// ------------------------------------------------------------ socket side

func (c *Conn) isStopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped
}

func (c *Conn) run() {
	defer close(c.done)
	rot := newRotation(c.opts.URLs, c.opts.Backoff, nil)
	for !c.isStopped() {
		welcomed, code := c.session(rot.url())
		if welcomed {
			rot.connected()
		}
		if c.isStopped() {
			return
		}
		switch code {
		case protocol.CloseUnauthorized, protocol.CloseUnsupportedProtocol:
			// Retrying cannot help: the token or the protocol is wrong. The gateway restarts workers with a fresh token.
			c.log.Error().Int("code", code).Msg("gateway rejected this worker; exiting")
			c.exit(1)
			return
		case protocol.CloseReplaced:
			c.log.Warn().Int("code", code).Msg("a newer worker for this instance replaced this one; exiting")
			c.exit(0)
			return
		}
		url, delay, failedRounds := rot.failed()
		if delay == 0 {
			c.log.Info().Str("url", url).Msg("trying the next gateway URL")
			continue
		}
		c.log.Info().Int("attempt", failedRounds).Int64("delayMs", delay.Milliseconds()).Str("url", url).Msg("reconnecting to gateway")
		select {
		case <-time.After(delay):
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *Conn) exit(code int) {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	if c.opts.Exit != nil {
		go c.opts.Exit(code)
	}
}

// session dials url, says hello and serves frames until the socket ends; it
// returns whether a welcome came and the close code (0 when none). A host
// name is resolved again at every dial (Go's resolver keeps no cache), so a
// DNS name listing the replicas works too.
func (c *Conn) session(url string) (welcomed bool, code int) {
	dialCtx, cancel := context.WithTimeout(c.ctx, c.opts.DialTimeout)
	ws, _, err := websocket.Dial(dialCtx, url, nil)
	cancel()
	if err != nil {
		c.log.Warn().Err(err).Str("url", url).Msg("cannot connect to the gateway")
		return false, 0
	}
	ws.SetReadLimit(64 << 20)
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		_ = ws.CloseNow()
		return false, 0
	}
	c.ws = ws
	c.url = url
	c.welcomed = false
	c.log.Info().Str("url", url).Msg("connected to gateway; saying hello")
	c.writeLocked(ws, protocol.Hello{
		Type: "hello", Protocol: protocol.Version, InstanceID: c.opts.InstanceID,
		Token: c.opts.Token, Provider: c.opts.Provider, WorkerVersion: c.opts.WorkerVersion,
	})
	c.mu.Unlock()

	pingDone := make(chan struct{})
	defer func() {
		close(pingDone)
		c.mu.Lock()
		if c.ws == ws {
			c.ws = nil
			c.welcomed = false
		}
		c.mu.Unlock()
		_ = ws.CloseNow()
	}()
	go c.pinger(ws, pingDone)

	for {
		readCtx, cancel := context.WithTimeout(c.ctx, c.opts.IdleTimeout)
		_, data, err := ws.Read(readCtx)
		timedOut := readCtx.Err() != nil && c.ctx.Err() == nil
		cancel()
		if err != nil {
			code := int(websocket.CloseStatus(err))
			if code < 0 {
				code = 0
			}
			switch {
			case timedOut:
				c.log.Warn().Dur("silentFor", c.opts.IdleTimeout).Msg("no frame from the gateway; dropping the connection")
			case c.isStopped():
			default:
				c.log.Warn().Int("code", code).Err(err).Str("url", url).Msg("gateway connection closed")
			}
			c.mu.Lock()
			welcomed = welcomed || c.welcomed
			c.mu.Unlock()
			return welcomed, code
		}
		if c.onFrame(ws, data) {
			welcomed = true
		}
	}
}

func (c *Conn) pinger(ws *websocket.Conn, done <-chan struct{}) {
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			u := c.opts.Usage()
			c.mu.Lock()
			if c.ws == ws && c.welcomed {
				c.pingLocked(ws, u)
			}
			c.mu.Unlock()
		}
	}
}

// onFrame handles one frame; true when it was the welcome.
func (c *Conn) onFrame(ws *websocket.Conn, data []byte) bool {
	frame, err := protocol.ParseGatewayFrame(data)
	if err != nil {
		c.log.Warn().Int("bytes", len(data)).Err(err).Msg("ignoring a frame from the gateway that matches no schema")
		return false
	}
	switch {
	case frame.Welcome != nil:
		return c.onWelcome(ws, frame.Welcome)
	case frame.Command != nil:
		cmd := *frame.Command
		c.runner.Submit(cmd, func(result protocol.ResultFrame, _ bool) { c.sendResult(result) })
	case frame.Ack != nil:
		c.mu.Lock()
		if !c.Events.Ack(*frame.Ack) {
			c.log.Debug().Str("eventId", *frame.Ack).Msg("ack for an event not pending")
		}
		c.mu.Unlock()
	case frame.Ping != nil:
		c.mu.Lock()
		if c.ws == ws {
			c.writeLocked(ws, protocol.PingFrame{Type: "pong", T: *frame.Ping})
		}
		c.mu.Unlock()
	case frame.Pong != nil:
		// The read deadline is all a pong is for.
	}
	return false
}

func (c *Conn) onWelcome(ws *websocket.Conn, w *protocol.Welcome) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ws != ws {
		return false
	}
	if c.welcomed {
		c.log.Warn().Msg("second welcome on one connection ignored")
		return false
	}
	if w.InstanceID != c.opts.InstanceID || w.Protocol != protocol.Version {
		c.log.Error().Int64("welcomeInstanceId", w.InstanceID).Int64("welcomeProtocol", w.Protocol).
			Msg("welcome does not match this worker; continuing")
	}
	c.welcomed = true
	c.phone = w.Phone
	// README step 4: state, pending QR, unacked events, unsent results, in that order.
	c.writeLocked(ws, c.state)
	qr := c.state.State == protocol.StateQR && c.qr != nil && time.Now().Before(c.qrExpires)
	if qr {
		c.writeLocked(ws, *c.qr)
	}
	events := c.Events.Unacked()
	for _, f := range events {
		c.writeLocked(ws, f)
	}
	results := c.Results.TakeUnsent()
	for _, r := range results {
		c.writeLocked(ws, r)
	}
	c.log.Info().Str("url", c.url).Str("state", string(c.state.State)).Bool("qr", qr).Int("events", len(events)).Int("results", len(results)).
		Msg("welcomed by gateway; flushed")
	// One ping (with the usage report) right away; the pinger sends the next ones.
	c.pingLocked(ws, c.opts.Usage())
	return true
}

// processUsage measures this process for the pings; a failure leaves the usage out.
func processUsage(log zerolog.Logger) func() *protocol.Usage {
	return func() *protocol.Usage {
		u, err := usage.Read()
		if err != nil {
			log.Debug().Err(err).Msg("cannot measure the usage for the ping")
			return nil
		}
		return &u
	}
}

// pingLocked sends a ping with the usage (left out when nil). c.mu must be held.
func (c *Conn) pingLocked(ws *websocket.Conn, u *protocol.Usage) {
	c.writeLocked(ws, protocol.PingFrame{Type: "ping", T: float64(time.Now().UnixMilli()), Usage: u})
}

func (c *Conn) sendResult(r protocol.ResultFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.sendIfReadyLocked(r) {
		c.Results.MarkUnsent(r.CommandID)
	}
}

// sendIfReadyLocked: frames other than hello and pong wait for the welcome. c.mu must be held.
func (c *Conn) sendIfReadyLocked(v any) bool {
	if !c.welcomed || c.ws == nil {
		return false
	}
	return c.writeLocked(c.ws, v)
}

// writeLocked writes one frame, bounded by WriteTimeout; a failed write closes the socket. c.mu must be held.
func (c *Conn) writeLocked(ws *websocket.Conn, v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		c.log.Error().Err(err).Msg("cannot encode a frame")
		return false
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.WriteTimeout)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, data); err != nil {
		if !errors.Is(err, context.Canceled) {
			c.log.Warn().Err(err).Msg("sending a frame to the gateway failed")
		}
		_ = ws.CloseNow()
		return false
	}
	return true
}
