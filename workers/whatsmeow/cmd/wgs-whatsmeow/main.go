// Command wgs-whatsmeow is the wgs worker for the whatsmeow provider: one
// WhatsApp number, dialling the gateway (see workers/whatsmeow/README.md).
package main

import (
	"os"

	"github.com/wgs/whatsmeow-worker/internal/app"
)

func main() {
	os.Exit(app.Run(os.Getenv))
}
