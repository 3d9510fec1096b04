package gateway

import (
	"container/list"
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"sync"

	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

// MaxBufferedEvents is enough for hours of traffic while the gateway is away, small enough to not exhaust memory.
const MaxBufferedEvents = 100_000

// MaxCachedResults is far more than the gateway redelivers at once; it bounds memory on long-lived workers.
const MaxCachedResults = 10_000

// EventBuffer keeps events until the gateway acks them, in emission order.
// Ids are `<boot id>-<sequence>`: the random boot id keeps them unique per
// instance across worker restarts (the gateway stores each eventId once).
// Not safe for concurrent use: the connection guards it.
type EventBuffer struct {
	max     int
	bootID  string
	seq     uint64
	order   *list.List
	byID    map[string]*list.Element
	Dropped int
}

// NewEventBuffer makes a buffer holding at most max events.
func NewEventBuffer(max int) *EventBuffer {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &EventBuffer{max: max, bootID: base64.RawURLEncoding.EncodeToString(b), order: list.New(), byID: map[string]*list.Element{}}
}

// Push wraps the event in a frame and keeps it; when full, the oldest is dropped and returned.
func (b *EventBuffer) Push(ev protocol.WorkerEvent) (frame protocol.EventFrame, dropped *protocol.EventFrame) {
	b.seq++
	frame = protocol.EventFrame{Type: "event", EventID: b.bootID + "-" + strconv.FormatUint(b.seq, 10), Event: ev}
	b.byID[frame.EventID] = b.order.PushBack(frame)
	if b.order.Len() > b.max {
		oldest := b.order.Front()
		f := b.order.Remove(oldest).(protocol.EventFrame)
		delete(b.byID, f.EventID)
		b.Dropped++
		dropped = &f
	}
	return frame, dropped
}

// Ack forgets an event; false when it was not pending.
func (b *EventBuffer) Ack(id string) bool {
	el, ok := b.byID[id]
	if !ok {
		return false
	}
	b.order.Remove(el)
	delete(b.byID, id)
	return true
}

// Unacked lists every pending event, oldest first.
func (b *EventBuffer) Unacked() []protocol.EventFrame {
	out := make([]protocol.EventFrame, 0, b.order.Len())
	for el := b.order.Front(); el != nil; el = el.Next() {
		out = append(out, el.Value.(protocol.EventFrame))
	}
	return out
}

// Len is the number of pending events.
func (b *EventBuffer) Len() int { return b.order.Len() }

// ResultCache remembers the results given, by commandId, so a redelivered
// command is answered again instead of executed twice. Bounded: the oldest
// is dropped. Results not sent on a welcomed connection are flushed after
// the next welcome. Safe for concurrent use.
type ResultCache struct {
	mu     sync.Mutex
	max    int
	order  *list.List
	byID   map[int64]*list.Element
	unsent map[int64]bool
}

// NewResultCache makes a cache of at most max results.
func NewResultCache(max int) *ResultCache {
	return &ResultCache{max: max, order: list.New(), byID: map[int64]*list.Element{}, unsent: map[int64]bool{}}
}

// Get returns the cached result of a command.
func (c *ResultCache) Get(id int64) (protocol.ResultFrame, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[id]
	if !ok {
		return protocol.ResultFrame{}, false
	}
	return el.Value.(protocol.ResultFrame), true
}

// Set stores a result (replacing an older one for the same command).
func (c *ResultCache) Set(r protocol.ResultFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[r.CommandID]; ok {
		c.order.Remove(el)
	}
	c.byID[r.CommandID] = c.order.PushBack(r)
	for c.order.Len() > c.max {
		oldest := c.order.Remove(c.order.Front()).(protocol.ResultFrame)
		delete(c.byID, oldest.CommandID)
		delete(c.unsent, oldest.CommandID)
	}
}

// MarkUnsent remembers that a cached result has not reached the gateway.
func (c *ResultCache) MarkUnsent(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byID[id]; ok {
		c.unsent[id] = true
	}
}

// TakeUnsent returns the unsent results, oldest first; they count as sent afterwards.
func (c *ResultCache) TakeUnsent() []protocol.ResultFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []protocol.ResultFrame
	for el := c.order.Front(); el != nil; el = el.Next() {
		r := el.Value.(protocol.ResultFrame)
		if c.unsent[r.CommandID] {
			out = append(out, r)
		}
	}
	clear(c.unsent)
	return out
}

// Len is the number of cached results.
func (c *ResultCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
