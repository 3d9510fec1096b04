package usage

import (
	"testing"
	"time"
)

func TestParseStatm(t *testing.T) {
	rss, err := ParseStatm([]byte("61234 5120 1024 300 0 20000 0\n"), 4096)
	if err != nil || rss != 5120*4096 {
		t.Errorf("got %d, %v; want %d", rss, err, 5120*4096)
	}
	for _, bad := range []string{"", "61234", "61234 x 1", "61234 -1 1"} {
		if _, err := ParseStatm([]byte(bad), 4096); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

// Read measures this test process: more than a megabyte resident, and CPU time that grows with work.
func TestReadMeasuresThisProcess(t *testing.T) {
	before, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if before.RSSBytes < 1<<20 {
		t.Errorf("rss %d bytes, want more than 1 MiB", before.RSSBytes)
	}
	if before.CPUSeconds < 0 {
		t.Errorf("cpu %f s", before.CPUSeconds)
	}
	// Burn some CPU (bounded by a deadline), then the CPU time must have grown.
	deadline := time.Now().Add(2 * time.Second)
	x := 0
	for {
		for i := 0; i < 1_000_000; i++ {
			x ^= i * 31
		}
		after, err := Read()
		if err != nil {
			t.Fatal(err)
		}
		if after.CPUSeconds > before.CPUSeconds {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cpu time did not grow: %f -> %f (%d)", before.CPUSeconds, after.CPUSeconds, x)
		}
	}
}
