package gateway

import (
	"time"

	"github.com/wgs/whatsmeow-worker/internal/backoff"
)

// Which gateway replica a worker dials, and when. WGS_GATEWAY_URL may list
// several replicas; the worker tries them in one fixed order of its own
// (DialOrder), moves to the next at once when a dial fails or a connection
// drops, and backs off only after a whole round of them failed. A connected
// worker stays where it is. The TypeScript worker (workers/src/failover.ts)
// implements the same order and rounds.

// DialOrder is the order a worker tries urls in: entry instanceID mod n
// first (so workers with consecutive ids spread evenly over the replicas),
// then the others shuffled with the instance id as seed (so the workers of a
// lost replica spread over the remaining ones instead of all moving to its
// neighbour in the list). The same instance gets the same order at every
// start, in the Go and in the TypeScript worker. urls is not modified.
func DialOrder(urls []string, instanceID int64) []string {
	order := append([]string(nil), urls...)
	n := len(order)
	if n < 2 {
		return order
	}
	first := int(instanceID % int64(n))
	order[0], order[first] = order[first], order[0]
	next := mulberry32(uint32(instanceID))
	// Fisher-Yates over positions 1..n-1.
	for i := n - 1; i >= 2; i-- {
		j := 1 + int(next()%uint32(i))
		order[i], order[j] = order[j], order[i]
	}
	return order
}

// mulberry32 is a small seeded generator of unsigned 32-bit integers; the
// TypeScript worker computes the very same numbers.
func mulberry32(seed uint32) func() uint32 {
	a := seed
	return func() uint32 {
		a += 0x6d2b79f5
		t := (a ^ (a >> 15)) * (a | 1)
		t ^= t + (t^(t>>7))*(t|61)
		return t ^ (t >> 14)
	}
}

// rotation is the failover state of one worker: the URL to dial now, and
// after a failure (a dial that failed, a close before the welcome, a dropped
// connection) the next one. A round is one failure per URL in a row; only a
// failed round waits, with the protocol's backoff (its attempt number is the
// count of failed rounds). A welcome ends the streak: the next failure starts
// a new round, without a wait. With one URL every failure is a whole round,
// which is exactly the single-gateway backoff.
type rotation struct {
	urls          []string
	policy        backoff.Policy
	random        func() float64
	index         int
	failedInRound int
	failedRounds  int
}

func newRotation(urls []string, policy backoff.Policy, random func() float64) *rotation {
	if len(urls) == 0 {
		panic("gateway: at least one gateway URL is needed")
	}
	return &rotation{urls: urls, policy: policy, random: random}
}

// url is the URL to dial now.
func (r *rotation) url() string { return r.urls[r.index] }

// connected: the gateway at the current URL welcomed the worker; it stays there.
func (r *rotation) connected() {
	r.failedInRound = 0
	r.failedRounds = 0
}

// failed moves past the current URL: the next URL, how long to wait before
// dialling it (0: at once, the round goes on), and the whole rounds failed in
// a row since the last welcome.
func (r *rotation) failed() (url string, delay time.Duration, failedRounds int) {
	r.index = (r.index + 1) % len(r.urls)
	r.failedInRound++
	if r.failedInRound < len(r.urls) {
		return r.url(), 0, r.failedRounds
	}
	r.failedInRound = 0
	delay = r.policy.Delay(r.failedRounds, r.random)
	r.failedRounds++
	return r.url(), delay, r.failedRounds
}
