package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func env(overrides map[string]string) func(string) string {
	base := map[string]string{
		"WGS_GATEWAY_URL":  "ws://127.0.0.1:8080/",
		"WGS_INSTANCE_ID":  "12",
		"WGS_WORKER_TOKEN": "tok-secret",
		"WGS_PROVIDER":     "whatsmeow",
		"WGS_STATE_DSN":    "postgres://wgs_i_12:pw-secret@127.0.0.1:5432/wgs",
		"WGS_STATE_SCHEMA": "wgs_i_12",
	}
	for k, v := range overrides {
		base[k] = v
	}
	return func(k string) string { return base[k] }
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.WorkerURLs, []string{"ws://127.0.0.1:8080/internal/workers/ws"}) {
		t.Errorf("WorkerURLs = %q", c.WorkerURLs)
	}
	if c.InstanceID != 12 || c.LogLevel != "info" || c.ExitWithParent {
		t.Errorf("unexpected config %+v", c)
	}
	if c.WhatsAppURL.String() != DefaultWhatsAppURL {
		t.Errorf("WhatsAppURL = %s", c.WhatsAppURL)
	}
	if c.RootPublicKey != nil {
		t.Errorf("RootPublicKey = %x, want unset (WhatsApp's own key)", *c.RootPublicKey)
	}
	red := c.Redacted()
	for _, v := range red {
		s, _ := v.(string)
		if strings.Contains(s, "secret") {
			t.Errorf("redacted config leaks a secret: %v", red)
		}
	}
}

func TestLoadErrorsNameTheVariable(t *testing.T) {
	cases := []struct {
		override map[string]string
		variable string
	}{
		{map[string]string{"WGS_GATEWAY_URL": ""}, "WGS_GATEWAY_URL"},
		{map[string]string{"WGS_GATEWAY_URL": "http://x"}, "WGS_GATEWAY_URL"},
		{map[string]string{"WGS_GATEWAY_URL": "ws://u:p@x"}, "WGS_GATEWAY_URL"},
		{map[string]string{"WGS_GATEWAY_URL": "ws://x/?a=1"}, "WGS_GATEWAY_URL"},
		{map[string]string{"WGS_INSTANCE_ID": ""}, "WGS_INSTANCE_ID"},
		{map[string]string{"WGS_INSTANCE_ID": "0"}, "WGS_INSTANCE_ID"},
		{map[string]string{"WGS_INSTANCE_ID": "3.5"}, "WGS_INSTANCE_ID"},
		{map[string]string{"WGS_WORKER_TOKEN": ""}, "WGS_WORKER_TOKEN"},
		{map[string]string{"WGS_PROVIDER": "sandbox"}, "WGS_PROVIDER"},
		{map[string]string{"WGS_EXIT_WITH_PARENT": "yes"}, "WGS_EXIT_WITH_PARENT"},
		{map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{map[string]string{"WGS_STATE_DSN": ""}, "WGS_STATE_DSN"},
		{map[string]string{"WGS_STATE_DSN": "mysql://a:b@h/db"}, "WGS_STATE_DSN"},
		{map[string]string{"WGS_STATE_DSN": "postgres://h/db"}, "WGS_STATE_DSN"},
		{map[string]string{"WGS_STATE_DSN": "postgres://u:pw-secret@h/"}, "WGS_STATE_DSN"},
		{map[string]string{"WGS_STATE_SCHEMA": ""}, "WGS_STATE_SCHEMA"},
		{map[string]string{"WGS_STATE_SCHEMA": "Bad-Schema"}, "WGS_STATE_SCHEMA"},
		{map[string]string{"WHATSMEOW_WS_URL": "https://x"}, "WHATSMEOW_WS_URL"},
		{map[string]string{"WHATSMEOW_ROOT_PUBLIC_KEY": "zz"}, "WHATSMEOW_ROOT_PUBLIC_KEY"},
		{map[string]string{"WHATSMEOW_ROOT_PUBLIC_KEY": "0123"}, "WHATSMEOW_ROOT_PUBLIC_KEY"},
		{map[string]string{"WHATSMEOW_ROOT_PUBLIC_KEY": strings.Repeat("ab", 33)}, "WHATSMEOW_ROOT_PUBLIC_KEY"},
		{map[string]string{"WHATSMEOW_ROOT_PUBLIC_KEY": strings.Repeat("g", 64)}, "WHATSMEOW_ROOT_PUBLIC_KEY"},
	}
	for _, tc := range cases {
		_, err := Load(env(tc.override))
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%v: want a config error, got %v", tc.override, err)
			continue
		}
		if ce.Variable != tc.variable {
			t.Errorf("%v: error names %s, want %s", tc.override, ce.Variable, tc.variable)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%v: error leaks a secret: %v", tc.override, err)
		}
	}
}

func TestLoadOverrides(t *testing.T) {
	c, err := Load(env(map[string]string{"WGS_EXIT_WITH_PARENT": "1", "LOG_LEVEL": "debug", "WHATSMEOW_WS_URL": "ws://127.0.0.1:9/ws"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.ExitWithParent || c.LogLevel != "debug" || c.WhatsAppURL.Host != "127.0.0.1:9" {
		t.Errorf("unexpected config %+v", c)
	}
}

func TestLoadRootPublicKey(t *testing.T) {
	key := "0f" + strings.Repeat("a1", 31)
	c, err := Load(env(map[string]string{"WHATSMEOW_ROOT_PUBLIC_KEY": strings.ToUpper(key)}))
	if err != nil {
		t.Fatal(err)
	}
	if c.RootPublicKey == nil || c.RootPublicKey[0] != 0x0f || c.RootPublicKey[31] != 0xa1 {
		t.Fatalf("RootPublicKey = %v", c.RootPublicKey)
	}
	if got := c.Redacted()["rootPublicKey"]; got != key {
		t.Errorf("redacted rootPublicKey = %v, want %s", got, key)
	}
}

func TestGatewayURLList(t *testing.T) {
	c, err := Load(env(map[string]string{"WGS_GATEWAY_URL": "ws://10.0.0.1:3000/, wss://gw-b.example.com/base ,ws://[::1]:3001"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ws://10.0.0.1:3000", "wss://gw-b.example.com/base", "ws://[::1]:3001"}; !slices.Equal(c.GatewayURLs, want) {
		t.Errorf("GatewayURLs = %q, want %q", c.GatewayURLs, want)
	}
	want := []string{"ws://10.0.0.1:3000/internal/workers/ws", "wss://gw-b.example.com/base/internal/workers/ws", "ws://[::1]:3001/internal/workers/ws"}
	if !slices.Equal(c.WorkerURLs, want) {
		t.Errorf("WorkerURLs = %q, want %q", c.WorkerURLs, want)
	}
	if got, _ := c.Redacted()["gateways"].([]string); !slices.Equal(got, want) {
		t.Errorf("redacted gateways = %v", c.Redacted()["gateways"])
	}
}

func TestGatewayURLDuplicatesDropped(t *testing.T) {
	got, err := ParseGatewayURLs("ws://gw-a:3000,ws://GW-A:3000/,ws://gw-b:3000,wss://gw-c:443,wss://gw-c,ws://gw-b:3000")
	if want := []string{"ws://gw-a:3000", "ws://gw-b:3000", "wss://gw-c"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("got %q, %v; want %q (the first of each kept, in order)", got, err, want)
	}
}

// The same messages as the TypeScript worker's (workers/src/config.test.ts).
func TestGatewayURLBadEntryNamed(t *testing.T) {
	cases := []struct{ value, problem string }{
		{"ws://a:3000,http://b:3000", `entry 2 of 2: must start with ws:// or wss:// (got "http://b:3000")`},
		{"ws://a:3000,,ws://c:3000", "entry 2 of 3: empty (expected a ws:// or wss:// URL)"},
		{"ws://a:3000,", "entry 2 of 2: empty (expected a ws:// or wss:// URL)"},
		{"not a url,ws://b:3000", `entry 1 of 2: not a URL (got "not a url")`},
		{"ws://a:3000,ws://b:3000/?replica=2", `entry 2 of 2: must be a base URL without query or fragment (got "ws://b:3000/?replica=2")`},
		{"ws://a:3000,ws://user:pw-zz9@b:3000", "entry 2 of 2: must not contain credentials"},
	}
	for _, tc := range cases {
		_, err := Load(env(map[string]string{"WGS_GATEWAY_URL": tc.value}))
		var ce *Error
		if !errors.As(err, &ce) || ce.Variable != "WGS_GATEWAY_URL" || ce.Problem != tc.problem {
			t.Errorf("%q: got %v, want WGS_GATEWAY_URL: %s", tc.value, err, tc.problem)
		}
	}
}
