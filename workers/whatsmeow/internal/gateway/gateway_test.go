package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/wgs/whatsmeow-worker/internal/backoff"
	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

func TestEventBuffer(t *testing.T) {
	b := NewEventBuffer(2)
	f1, _ := b.Push(protocol.StatusEvent("a", "sent", time.Now()))
	f2, _ := b.Push(protocol.StatusEvent("b", "sent", time.Now()))
	if f1.EventID == f2.EventID || !strings.HasSuffix(f1.EventID, "-1") || !strings.HasSuffix(f2.EventID, "-2") {
		t.Errorf("ids %s %s", f1.EventID, f2.EventID)
	}
	_, dropped := b.Push(protocol.StatusEvent("c", "sent", time.Now()))
	if dropped == nil || dropped.EventID != f1.EventID || b.Dropped != 1 || b.Len() != 2 {
		t.Errorf("full buffer drops the oldest: %+v", dropped)
	}
	if !b.Ack(f2.EventID) || b.Ack(f2.EventID) || b.Ack(f1.EventID) {
		t.Error("ack semantics")
	}
	if u := b.Unacked(); len(u) != 1 || u[0].Event.Data.(*protocol.MessageStatus).MessageID != "c" {
		t.Errorf("unacked %+v", u)
	}
	if NewEventBuffer(1).bootID == b.bootID {
		t.Error("boot ids must differ between buffers")
	}
}

func TestResultCache(t *testing.T) {
	c := NewResultCache(2)
	c.Set(protocol.Success(1, nil))
	c.Set(protocol.Success(2, nil))
	c.MarkUnsent(1)
	c.MarkUnsent(2)
	c.MarkUnsent(99) // not cached: ignored
	c.Set(protocol.Success(3, nil))
	if _, ok := c.Get(1); ok || c.Len() != 2 {
		t.Error("the oldest result is dropped")
	}
	if u := c.TakeUnsent(); len(u) != 1 || u[0].CommandID != 2 {
		t.Errorf("unsent %+v", u)
	}
	if len(c.TakeUnsent()) != 0 {
		t.Error("taken results count as sent")
	}
}

func TestRunnerHoldsThenRunsOnceInOrder(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := NewRunner(ctx, NewResultCache(10), zerolog.Nop())
	var calls atomic.Int32
	var mu sync.Mutex
	var got []protocol.ResultFrame
	var cached []bool
	reply := func(res protocol.ResultFrame, fromCache bool) {
		mu.Lock()
		got, cached = append(got, res), append(cached, fromCache)
		mu.Unlock()
	}
	r.Submit(protocol.Command{CommandID: 1, Name: "x"}, reply)
	r.Submit(protocol.Command{CommandID: 1, Name: "x"}, reply)
	r.Submit(protocol.Command{CommandID: 2, Name: "fail"}, reply)
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	held := len(got)
	mu.Unlock()
	if held != 0 {
		t.Fatalf("commands ran before Open: %d", held)
	}
	r.Open(func(_ context.Context, name string, _ json.RawMessage) (map[string]any, error) {
		calls.Add(1)
		if name == "fail" {
			return nil, protocol.Errorf(protocol.CodeInvalidArgs, "bad")
		}
		return map[string]any{"n": calls.Load()}, nil
	})
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || calls.Load() != 2 {
		t.Fatalf("results %+v, calls %d", got, calls.Load())
	}
	a, _ := json.Marshal(got[0])
	b, _ := json.Marshal(got[1])
	if string(a) != string(b) || cached[0] || !cached[1] {
		t.Errorf("a redelivered command gets the cached result: %s %s %v", a, b, cached)
	}
	if got[2].OK || got[2].Error.Code != protocol.CodeInvalidArgs {
		t.Errorf("failure: %+v", got[2])
	}
}

// fakeGateway is a loopback WebSocket server; handle runs per connection.
func fakeGateway(t *testing.T, handle func(ctx context.Context, ws *websocket.Conn, n int)) string {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		handle(r.Context(), ws, int(n.Add(1))-1)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func read(ctx context.Context, t *testing.T, ws *websocket.Conn) map[string]any {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, data, err := ws.Read(ctx)
	if err != nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Errorf("bad frame %s", data)
	}
	return m
}

// readSkippingPings reads the next frame that is not one of the worker's own pings.
func readSkippingPings(ctx context.Context, t *testing.T, ws *websocket.Conn) map[string]any {
	for {
		f := read(ctx, t, ws)
		if f == nil || f["type"] != "ping" {
			return f
		}
	}
}

func write(ctx context.Context, ws *websocket.Conn, v any) {
	data, _ := json.Marshal(v)
	_ = ws.Write(ctx, websocket.MessageText, data)
}

func newConn(url string, exit func(int)) *Conn {
	return New(Options{URLs: []string{url}, InstanceID: 7, Token: "tok", Provider: "whatsmeow", WorkerVersion: "t", Log: zerolog.Nop(), Exit: exit,
		Backoff: backoff.Policy{Base: 10 * time.Millisecond, Cap: 50 * time.Millisecond}})
}

func TestConnFlushesAfterWelcomeAndResendsUnacked(t *testing.T) {
	frames := make(chan map[string]any, 100)
	url := fakeGateway(t, func(ctx context.Context, ws *websocket.Conn, n int) {
		hello := read(ctx, t, ws)
		frames <- hello
		write(ctx, ws, map[string]any{"type": "welcome", "protocol": 1, "instanceId": 7, "phone": "15550001111"})
		for i := 0; i < 3; i++ {
			f := read(ctx, t, ws)
			if f == nil {
				return
			}
			f["conn"] = n
			frames <- f
		}
		if n == 0 {
			_ = ws.Close(websocket.StatusGoingAway, "restart") // not acked: the event must come again
			return
		}
		write(ctx, ws, map[string]any{"type": "ping", "t": 5})
		frames <- readSkippingPings(ctx, t, ws)
		_ = ws.Close(websocket.StatusNormalClosure, "")
	})
	c := newConn(url, nil)
	c.SetState(protocol.StateQR, "waiting for QR scan")
	c.SetQR("code-1", time.Now().Add(time.Minute))
	c.Emit(protocol.StatusEvent("m-1", "sent", time.Now()))
	c.Start()
	defer c.Stop(time.Second)

	next := func() map[string]any {
		select {
		case f := <-frames:
			return f
		case <-time.After(5 * time.Second):
			t.Fatal("no frame")
			return nil
		}
	}
	hello := next()
	if hello["type"] != "hello" || hello["token"] != "tok" || hello["protocol"] != float64(1) || hello["instanceId"] != float64(7) {
		t.Fatalf("hello %v", hello)
	}
	for round := 0; round < 2; round++ {
		if round == 1 {
			if h := next(); h["type"] != "hello" {
				t.Fatalf("reconnect hello %v", h)
			}
		}
		if f := next(); f["type"] != "state" || f["state"] != "qr" {
			t.Errorf("round %d: state first, got %v", round, f)
		}
		if f := next(); f["type"] != "qr" || f["code"] != "code-1" {
			t.Errorf("round %d: qr second, got %v", round, f)
		}
		if f := next(); f["type"] != "event" {
			t.Errorf("round %d: the unacked event third, got %v", round, f)
		}
	}
	if f := next(); f["type"] != "pong" || f["t"] != float64(5) {
		t.Errorf("pong %v", f)
	}
	if c.Phone() != "15550001111" {
		t.Errorf("phone %q", c.Phone())
	}
}

func TestConnPingsWithUsageAfterWelcome(t *testing.T) {
	for _, measured := range []bool{true, false} {
		frames := make(chan map[string]any, 10)
		url := fakeGateway(t, func(ctx context.Context, ws *websocket.Conn, _ int) {
			read(ctx, t, ws) // hello
			write(ctx, ws, map[string]any{"type": "welcome", "protocol": 1, "instanceId": 7, "phone": "15550001111"})
			for i := 0; i < 2; i++ {
				frames <- read(ctx, t, ws)
			}
			for read(ctx, t, ws) != nil { // open until the worker stops
			}
		})
		c := newConn(url, nil)
		c.opts.PingInterval = time.Hour // only the ping that follows the welcome
		if !measured {
			c.opts.Usage = func() *protocol.Usage { return nil }
		}
		c.Start()
		next := func() map[string]any {
			select {
			case f := <-frames:
				return f
			case <-time.After(5 * time.Second):
				t.Fatal("no frame")
				return nil
			}
		}
		if f := next(); f["type"] != "state" {
			t.Errorf("the state first, got %v", f)
		}
		ping := next()
		if ping["type"] != "ping" {
			t.Fatalf("then a ping, got %v", ping)
		}
		u, ok := ping["usage"].(map[string]any)
		switch {
		case !measured && ok:
			t.Errorf("no measurement, no usage: %v", ping)
		case measured && !ok:
			t.Errorf("ping without usage: %v", ping)
		case measured:
			rss, _ := u["rssBytes"].(float64)
			cpu, isNumber := u["cpuSeconds"].(float64)
			if rss < 1<<20 || rss != float64(int64(rss)) || !isNumber || cpu < 0 {
				t.Errorf("usage %v: want an integer rssBytes over 1 MiB and cpuSeconds >= 0", u)
			}
		}
		c.Stop(time.Second)
	}
}

func TestConnExitCodes(t *testing.T) {
	for code, want := range map[websocket.StatusCode]int{4401: 1, 4426: 1, 4409: 0} {
		var dials atomic.Int32
		url := fakeGateway(t, func(ctx context.Context, ws *websocket.Conn, _ int) {
			dials.Add(1)
			read(ctx, t, ws)
			_ = ws.Close(code, "go away")
		})
		exited := make(chan int, 1)
		c := newConn(url, func(c int) { exited <- c })
		c.Start()
		select {
		case got := <-exited:
			if got != want {
				t.Errorf("close %d: exit %d, want %d", code, got, want)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("close %d: no exit", code)
		}
		time.Sleep(100 * time.Millisecond) // backoff is 10-50 ms: a reconnect would show within this bounded look
		if dials.Load() != 1 {
			t.Errorf("close %d: %d dials, want no reconnect", code, dials.Load())
		}
		c.Stop(time.Second)
	}
}
