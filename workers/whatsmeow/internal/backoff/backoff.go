// Package backoff is the protocol's reconnect policy: 0.25 s doubling to
// 10 s, ±20% jitter, so restarted workers do not reconnect in lockstep.
package backoff

import (
	"math"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff with jitter.
type Policy struct {
	Base time.Duration
	Cap  time.Duration
	// Jitter is the fraction of the delay added or removed at random.
	Jitter float64
}

// Gateway is the protocol v1 policy for reconnecting to the gateway.
var Gateway = Policy{Base: 250 * time.Millisecond, Cap: 10 * time.Second, Jitter: 0.2}

// WhatsApp is used to reconnect to WhatsApp's socket when whatsmeow does not (before login).
var WhatsApp = Policy{Base: 1 * time.Second, Cap: 30 * time.Second, Jitter: 0.2}

// Delay is the wait before attempt `attempt` (0 for the first retry); random
// returns a value in [0, 1). The cap applies after the jitter too.
func (p Policy) Delay(attempt int, random func() float64) time.Duration {
	if random == nil {
		random = rand.Float64
	}
	if attempt < 0 {
		attempt = 0
	}
	exp := float64(p.Base) * math.Pow(2, float64(min(attempt, 62)))
	exp = math.Min(float64(p.Cap), exp)
	factor := 1 + p.Jitter*(2*random()-1)
	return time.Duration(math.Round(math.Min(float64(p.Cap), exp*factor)))
}
