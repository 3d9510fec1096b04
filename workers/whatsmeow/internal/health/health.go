// Package health gives the container a HEALTHCHECK without a port, the same
// way as the TypeScript worker: while the worker is connected to the gateway
// it writes the time to WGS_HEALTH_FILE every few seconds, and
// `wgs-whatsmeow --health` passes while that time is recent.
package health

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	// WriteEvery is how often a healthy worker writes the file.
	WriteEvery = 2 * time.Second
	// MaxAge is how old the time may be before the worker counts as unhealthy.
	MaxAge = 30 * time.Second
)

// Write writes the current time (Unix ms) to path every interval while healthy() holds, until ctx ends.
func Write(ctx context.Context, path string, interval time.Duration, healthy func() bool) {
	beat := func() {
		if healthy() {
			// An unwritable file simply reads as unhealthy.
			_ = os.WriteFile(path, []byte(strconv.FormatInt(time.Now().UnixMilli(), 10)), 0o600)
		}
	}
	beat()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			beat()
		}
	}
}

// Problem says why the worker is unhealthy, or returns nil when it is healthy.
func Problem(path string, now time.Time, maxAge time.Duration) error {
	if path == "" {
		return errors.New("WGS_HEALTH_FILE is not set")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return errors.New("never connected to the gateway")
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return fmt.Errorf("%s holds no time", path)
	}
	if age := now.Sub(time.UnixMilli(ms)); age > maxAge {
		return fmt.Errorf("last connected to the gateway %d s ago", int(age.Seconds()))
	}
	return nil
}
