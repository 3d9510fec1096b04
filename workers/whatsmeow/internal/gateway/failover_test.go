package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/wgs/whatsmeow-worker/internal/backoff"
	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

var five = []string{"a", "b", "c", "d", "e"}

func TestDialOrderIsAPermutationStartingAtIDModN(t *testing.T) {
	if got := DialOrder([]string{"ws://gw"}, 7); !slices.Equal(got, []string{"ws://gw"}) {
		t.Errorf("one URL: %q", got)
	}
	for id := int64(1); id <= 200; id++ {
		for n := 2; n <= 5; n++ {
			urls := five[:n]
			order := DialOrder(urls, id)
			sorted := slices.Sorted(slices.Values(order))
			if !slices.Equal(sorted, urls) || order[0] != urls[id%int64(n)] || !slices.Equal(DialOrder(urls, id), order) {
				t.Fatalf("id %d, n %d: order %q", id, n, order)
			}
		}
	}
	if !slices.Equal(five, []string{"a", "b", "c", "d", "e"}) {
		t.Errorf("the input was reordered: %q", five)
	}
}

// The same vectors as workers/src/failover.test.ts: both workers order a list alike.
func TestDialOrderMatchesTheTypeScriptWorker(t *testing.T) {
	cases := []struct {
		urls []string
		id   int64
		want string
	}{
		{five, 1, "[b d c a e]"},
		{five, 7, "[c a e d b]"},
		{five, 101, "[b d e a c]"},
		{five, 2147483647, "[c b d e a]"},
		{[]string{"a", "b", "c"}, 7, "[b c a]"},
		{[]string{"a", "b", "c"}, 12, "[a c b]"},
	}
	for _, tc := range cases {
		if got := fmt.Sprint(DialOrder(tc.urls, tc.id)); got != tc.want {
			t.Errorf("DialOrder(%q, %d) = %s, want %s", tc.urls, tc.id, got, tc.want)
		}
	}
}

func TestDialOrderSpreadsWorkersAndFailovers(t *testing.T) {
	first := map[string]int{}
	next := map[string]int{}
	for id := int64(1); id <= 3000; id++ {
		o := DialOrder([]string{"a", "b", "c"}, id)
		first[o[0]]++
		if o[0] == "a" {
			next[o[1]]++
		}
	}
	if first["a"] != 1000 || first["b"] != 1000 || first["c"] != 1000 {
		t.Errorf("first URLs %v, want 1000 each", first)
	}
	// Replica a lost: its workers move to b and to c, about half each.
	if next["b"]+next["c"] != 1000 || next["b"] < 400 || next["b"] > 600 {
		t.Errorf("after a: %v", next)
	}
}

func TestRotationRounds(t *testing.T) {
	policy := backoff.Policy{Base: 100 * time.Millisecond, Cap: time.Second}
	r := newRotation([]string{"A", "B", "C"}, policy, nil)
	var got []string
	for i := 0; i < 9; i++ {
		url, delay, rounds := r.failed()
		got = append(got, fmt.Sprintf("%s %v %d", url, delay, rounds))
	}
	want := []string{"B 0s 0", "C 0s 0", "A 100ms 1", "B 0s 1", "C 0s 1", "A 200ms 2", "B 0s 2", "C 0s 2", "A 400ms 3"}
	if !slices.Equal(got, want) {
		t.Errorf("a failure moves on at once, a failed round backs off:\n got %q\nwant %q", got, want)
	}

	// Connected to B: it stays; its drop moves on at once and the backoff starts over.
	r.failed()
	if r.url() != "B" {
		t.Fatalf("url %s", r.url())
	}
	r.connected()
	for _, want := range []string{"C 0s 0", "A 0s 0", "B 100ms 1"} {
		url, delay, rounds := r.failed()
		if got := fmt.Sprintf("%s %v %d", url, delay, rounds); got != want {
			t.Errorf("after a drop: got %s, want %s", got, want)
		}
	}
}

func TestRotationOneURLIsTheOldBackoff(t *testing.T) {
	random := func() float64 { return 0.3 }
	r := newRotation([]string{"A"}, backoff.Gateway, random)
	for attempt := 0; attempt < 8; attempt++ {
		url, delay, _ := r.failed()
		if want := backoff.Gateway.Delay(attempt, random); url != "A" || delay != want {
			t.Errorf("attempt %d: %s after %v, want A after %v", attempt, url, delay, want)
		}
	}
	r.connected()
	if _, delay, _ := r.failed(); delay != backoff.Gateway.Delay(0, random) {
		t.Errorf("after a welcome: %v", delay)
	}
}

// replica is a fake gateway replica that can be killed: its listener and every connection gone at once.
type replica struct {
	srv   *httptest.Server
	url   string
	mu    sync.Mutex
	conns []*websocket.Conn
	hello chan map[string]any
	event chan map[string]any
}

func newReplica(t *testing.T) *replica {
	r := &replica{hello: make(chan map[string]any, 10), event: make(chan map[string]any, 10)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ws, err := websocket.Accept(w, req, nil)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns = append(r.conns, ws)
		r.mu.Unlock()
		ctx := req.Context()
		r.hello <- read(ctx, t, ws)
		write(ctx, ws, map[string]any{"type": "welcome", "protocol": 1, "instanceId": 7, "phone": "15550001111"})
		for {
			f := read(ctx, t, ws)
			if f == nil {
				return
			}
			if f["type"] == "event" {
				r.event <- f // never acked: it must come again on the next replica
			}
		}
	}))
	r.url = "ws" + strings.TrimPrefix(r.srv.URL, "http") + "/internal/workers/ws"
	t.Cleanup(r.kill)
	return r
}

func (r *replica) kill() {
	r.srv.Listener.Close()
	r.mu.Lock()
	for _, ws := range r.conns {
		_ = ws.CloseNow()
	}
	r.mu.Unlock()
	r.srv.Close()
}

func receive(t *testing.T, ch chan map[string]any, what string) map[string]any {
	t.Helper()
	select {
	case f := <-ch:
		return f
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s", what)
		return nil
	}
}

func TestConnFailsOverToTheNextURL(t *testing.T) {
	deadSrv := httptest.NewServer(http.NotFoundHandler())
	dead := "ws" + strings.TrimPrefix(deadSrv.URL, "http") + "/internal/workers/ws"
	deadSrv.Close()
	second, third := newReplica(t), newReplica(t)

	// A backoff of a minute: any wait between the URLs of one round would time the test out.
	c := New(Options{URLs: []string{dead, second.url, third.url}, InstanceID: 7, Token: "tok", Provider: "whatsmeow", WorkerVersion: "t",
		Log: zerolog.Nop(), Backoff: backoff.Policy{Base: time.Minute, Cap: time.Minute}})
	c.Emit(protocol.StatusEvent("m-1", "sent", time.Now()))
	c.Start()
	defer c.Stop(time.Second)

	if h := receive(t, second.hello, "hello on the second URL"); h["token"] != "tok" {
		t.Fatalf("hello %v", h)
	}
	ev := receive(t, second.event, "event on the second URL")
	second.kill()
	if h := receive(t, third.hello, "hello on the third URL after the second died"); h["token"] != "tok" || h["instanceId"] != float64(7) {
		t.Fatalf("hello %v", h)
	}
	if again := receive(t, third.event, "the unacked event again"); again["eventId"] != ev["eventId"] {
		t.Errorf("resent %v, want %v", again, ev)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !c.Ready() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !c.Ready() {
		t.Error("not ready on the third URL")
	}
	select {
	case h := <-second.hello:
		t.Errorf("a second hello on the dead replica: %v", h)
	default:
	}
}
