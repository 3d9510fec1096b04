package wa

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

func TestPublicAddress(t *testing.T) {
	for addr, public := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.17.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "100.64.0.1": false, "fd00::1": false, "fe80::1": false, "0.0.0.0": false, "224.0.0.1": false,
	} {
		if got := publicAddress(net.ParseIP(addr)); got != public {
			t.Errorf("publicAddress(%s) = %v, want %v", addr, got, public)
		}
	}
}

// A media URL on loopback is refused at dial time unless private addresses are allowed.
func TestLoadMediaRefusesPrivateAddresses(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("image bytes"))
	}))
	defer srv.Close()
	in := &protocol.MediaInput{URL: srv.URL + "/a.png", Mimetype: "image/png"}

	_, err := LoadMedia(context.Background(), in, mediaHTTPClient(false))
	if err == nil || !strings.Contains(err.Error(), "refusing to fetch media from 127.0.0.1") {
		t.Fatalf("private address not refused: %v", err)
	}

	allowed := mediaHTTPClient(true)
	allowed.Transport.(*http.Transport).TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig
	data, err := LoadMedia(context.Background(), in, allowed)
	if err != nil || string(data) != "image bytes" {
		t.Fatalf("allowed fetch: %q, %v", data, err)
	}
}
