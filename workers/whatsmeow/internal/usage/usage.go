// Package usage measures the worker's own process for the usage its pings
// report: the resident set size now (from /proc/self/statm; getrusage's
// maxrss is the peak, not the current size) and the user + system CPU time
// since the process started (getrusage).
package usage

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

// StatmPath is where Linux shows the process's memory in pages.
const StatmPath = "/proc/self/statm"

// Read measures this process now.
func Read() (protocol.Usage, error) {
	statm, err := os.ReadFile(StatmPath)
	if err != nil {
		return protocol.Usage{}, fmt.Errorf("reading the resident memory: %w", err)
	}
	rss, err := ParseStatm(statm, os.Getpagesize())
	if err != nil {
		return protocol.Usage{}, err
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return protocol.Usage{}, fmt.Errorf("reading the CPU time: %w", err)
	}
	return protocol.Usage{RSSBytes: rss, CPUSeconds: seconds(ru.Utime) + seconds(ru.Stime)}, nil
}

// ParseStatm reads the resident set size in bytes from the contents of
// /proc/<pid>/statm ("size resident shared text lib data dt", in pages).
func ParseStatm(statm []byte, pageSize int) (int64, error) {
	fields := bytes.Fields(statm)
	if len(fields) < 2 {
		return 0, fmt.Errorf("unexpected %s: %q", StatmPath, statm)
	}
	pages, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil || pages < 0 {
		return 0, fmt.Errorf("unexpected resident pages in %s: %q", StatmPath, fields[1])
	}
	return pages * int64(pageSize), nil
}

func seconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}
