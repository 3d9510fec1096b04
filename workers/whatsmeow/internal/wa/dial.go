package wa

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/wgs/whatsmeow-worker/internal/config"
)

// socketHTTPClient is the HTTP client whatsmeow dials its WebSocket with.
// With the default URL it returns nil (whatsmeow's own client). Otherwise
// every connection goes to target's host and port instead of WhatsApp's
// (ws:// plain, wss:// TLS to the target's name): whatsmeow keeps its own
// URL and path, and nothing resolves or dials WhatsApp's hosts. Proxies from
// the environment are not used with an override.
func socketHTTPClient(target *url.URL) *http.Client {
	if target == nil || target.String() == config.DefaultWhatsAppURL {
		return nil
	}
	port := target.Port()
	if port == "" {
		port = "443"
		if target.Scheme == "ws" {
			port = "80"
		}
	}
	addr := net.JoinHostPort(target.Hostname(), port)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil || target.Scheme == "ws" {
			return conn, err
		}
		tlsConn := tls.Client(conn, &tls.Config{ServerName: target.Hostname(), MinVersion: tls.VersionTLS12})
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		return tlsConn, nil
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         dial,
		DialTLSContext:      dial,
		TLSHandshakeTimeout: 10 * time.Second,
	}}
}
