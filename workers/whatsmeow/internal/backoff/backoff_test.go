package backoff

import (
	"testing"
	"time"
)

func TestGatewayPolicy(t *testing.T) {
	mid := func() float64 { return 0.5 }
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := Gateway.Delay(i, mid); got != w {
			t.Errorf("attempt %d: %v, want %v", i, got, w)
		}
	}
	if got := Gateway.Delay(1000, mid); got != 10*time.Second {
		t.Errorf("huge attempt: %v", got)
	}
}

func TestJitterBounds(t *testing.T) {
	low := Gateway.Delay(2, func() float64 { return 0 })
	high := Gateway.Delay(2, func() float64 { return 0.999999 })
	if low != 800*time.Millisecond {
		t.Errorf("low = %v, want 800ms", low)
	}
	if high < 1199*time.Millisecond || high > 1200*time.Millisecond {
		t.Errorf("high = %v, want about 1.2s", high)
	}
	// The cap holds after the jitter.
	if got := Gateway.Delay(10, func() float64 { return 0.999999 }); got != 10*time.Second {
		t.Errorf("capped = %v", got)
	}
	for i := 0; i < 100; i++ {
		d := Gateway.Delay(i%8, nil)
		if d <= 0 || d > 10*time.Second {
			t.Fatalf("delay out of range: %v", d)
		}
	}
}
