package wa

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

// MediaDownloadTimeout bounds fetching a media.url.
const MediaDownloadTimeout = 60 * time.Second

// LoadMedia returns the bytes of media to send: base64 data decoded, or an
// https URL fetched (at most protocol.MaxInlineMediaBytes either way).
func LoadMedia(ctx context.Context, in *protocol.MediaInput, client *http.Client) ([]byte, error) {
	if in.Data != "" {
		data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(in.Data))
		if err != nil {
			return nil, &protocol.CommandError{Code: protocol.CodeInvalidArgs, Message: "/media/data: not valid base64", Err: err}
		}
		if len(data) > protocol.MaxInlineMediaBytes {
			return nil, protocol.Errorf(protocol.CodeInvalidArgs, "/media/data: more than %d bytes once decoded", protocol.MaxInlineMediaBytes)
		}
		return data, nil
	}
	if !strings.HasPrefix(in.URL, "https://") {
		return nil, protocol.Errorf(protocol.CodeInvalidArgs, "/media/url: must be an https:// URL")
	}
	ctx, cancel := context.WithTimeout(ctx, MediaDownloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.URL, nil)
	if err != nil {
		return nil, &protocol.CommandError{Code: protocol.CodeInvalidArgs, Message: "/media/url: not a valid URL", Err: err}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, &protocol.CommandError{Code: protocol.CodeMediaFailed, Message: fmt.Sprintf("downloading the media failed: %v", err), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, protocol.Errorf(protocol.CodeMediaFailed, "downloading the media failed: HTTP %d", resp.StatusCode)
	}
	if resp.ContentLength > protocol.MaxInlineMediaBytes {
		return nil, protocol.Errorf(protocol.CodeMediaFailed, "the media is larger than %d bytes", protocol.MaxInlineMediaBytes)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, protocol.MaxInlineMediaBytes+1))
	if err != nil {
		return nil, &protocol.CommandError{Code: protocol.CodeMediaFailed, Message: fmt.Sprintf("downloading the media failed: %v", err), Err: err}
	}
	if len(data) > protocol.MaxInlineMediaBytes {
		return nil, protocol.Errorf(protocol.CodeMediaFailed, "the media is larger than %d bytes", protocol.MaxInlineMediaBytes)
	}
	if len(data) == 0 {
		return nil, protocol.Errorf(protocol.CodeMediaFailed, "the media download was empty")
	}
	return data, nil
}

// publicAddress is false for loopback, private (RFC 1918, fc00::/7), shared
// (100.64.0.0/10), link-local (cloud metadata included), multicast and
// unspecified addresses.
func publicAddress(ip net.IP) bool {
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	return !sharedAddressSpace.Contains(ip)
}

var sharedAddressSpace = &net.IPNet{IP: net.IPv4(100, 64, 0, 0), Mask: net.CIDRMask(10, 32)}

// refusePrivate is a dialer Control that refuses non-public addresses. It runs
// on the address actually dialled, after DNS, so a name that resolves to an
// internal address (or a redirect to one) is refused too.
func refusePrivate(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("refusing to fetch media from %s: %w", address, err)
	}
	if ip := net.ParseIP(host); ip == nil || !publicAddress(ip) {
		return fmt.Errorf("refusing to fetch media from %s: a private, loopback or link-local address", host)
	}
	return nil
}

// mediaHTTPClient fetches media.url: redirects stay on https, at most 5, and
// (unless allowPrivate) only public addresses are dialled, so a media URL
// cannot reach the worker's own network.
func mediaHTTPClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if !allowPrivate {
		dialer.Control = refusePrivate
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	transport.DialContext = dialer.DialContext
	return &http.Client{
		Transport: transport,
		Timeout:   MediaDownloadTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return fmt.Errorf("too many redirects")
			}
			if req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a non-https URL")
			}
			return nil
		},
	}
}
