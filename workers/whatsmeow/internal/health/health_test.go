package health

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProblem(t *testing.T) {
	file := filepath.Join(t.TempDir(), "h")
	if err := Problem("", time.Now(), MaxAge); err == nil || !strings.Contains(err.Error(), "WGS_HEALTH_FILE") {
		t.Fatalf("unset path: %v", err)
	}
	if err := Problem(file, time.Now(), MaxAge); err == nil || err.Error() != "never connected to the gateway" {
		t.Fatalf("missing file: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // one beat, then Write returns
	Write(ctx, file, time.Hour, func() bool { return true })
	if err := Problem(file, time.Now(), MaxAge); err != nil {
		t.Fatalf("fresh file: %v", err)
	}
	if err := Problem(file, time.Now().Add(31*time.Second), MaxAge); err == nil || !strings.Contains(err.Error(), "s ago") {
		t.Fatalf("stale file: %v", err)
	}
	if err := os.WriteFile(file, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Problem(file, time.Now(), MaxAge); err == nil || !strings.Contains(err.Error(), "holds no time") {
		t.Fatalf("junk: %v", err)
	}
}

func TestWriteSkipsWhileUnhealthy(t *testing.T) {
	file := filepath.Join(t.TempDir(), "h")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	Write(ctx, file, time.Hour, func() bool { return false })
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("file written while unhealthy: %v", err)
	}
}
