// Command wgs-whatsmeow is the wgs worker for the whatsmeow provider: one
// WhatsApp number, dialling the gateway (see workers/whatsmeow/README.md).
// `wgs-whatsmeow --health` is the image's HEALTHCHECK (see internal/health).
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/wgs/whatsmeow-worker/internal/app"
	"github.com/wgs/whatsmeow-worker/internal/health"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--health" {
		if err := health.Problem(os.Getenv("WGS_HEALTH_FILE"), time.Now(), health.MaxAge); err != nil {
			fmt.Fprintf(os.Stderr, "unhealthy: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(app.Run(os.Getenv))
}
