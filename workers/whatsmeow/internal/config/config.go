// Package config parses the worker's environment once, at startup. Every
// variable and its default is documented on Config; a bad value fails with
// an error naming the variable (secrets are never echoed back).
package config

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// WorkerPath is where workers connect on the gateway (protocol v1).
const WorkerPath = "/internal/workers/ws"

// DefaultWhatsAppURL is whatsmeow's own WebSocket address.
const DefaultWhatsAppURL = "wss://web.whatsapp.com/ws/chat"

// ProviderName is the only WGS_PROVIDER this program implements.
const ProviderName = "whatsmeow"

var schemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// LogLevels are the accepted LOG_LEVEL values (the same set as the TypeScript worker).
var LogLevels = []string{"fatal", "error", "warn", "info", "debug", "trace", "silent"}

// Config is everything the worker reads from its environment.
type Config struct {
	// GatewayURLs is WGS_GATEWAY_URL: one ws:// or wss:// base URL or a
	// comma-separated list of them (one per gateway replica), each without a
	// trailing slash, duplicates removed, in the order given.
	GatewayURLs []string
	// WorkerURLs is what the worker dials: each of GatewayURLs + WorkerPath.
	WorkerURLs []string
	// InstanceID is WGS_INSTANCE_ID (>= 1).
	InstanceID int64
	// Token is WGS_WORKER_TOKEN. Secret: it goes into the hello frame and nowhere else.
	Token string
	// Provider is WGS_PROVIDER; must be "whatsmeow".
	Provider string
	// StateDSN is WGS_STATE_DSN, the postgres:// URL of the instance's role. Secret.
	StateDSN string
	// StateSchema is WGS_STATE_SCHEMA, the instance's schema (a plain lower-case identifier).
	StateSchema string
	// ExitWithParent is WGS_EXIT_WITH_PARENT=1 (default 0): stop when the parent process goes away.
	ExitWithParent bool
	// LogLevel is LOG_LEVEL (default info).
	LogLevel string
	// WhatsAppURL is WHATSMEOW_WS_URL (default DefaultWhatsAppURL): where the WhatsApp
	// socket is dialled. Only its scheme, host and port are used (whatsmeow keeps its
	// own path); tests point it at a closed loopback port.
	WhatsAppURL *url.URL
	// RootPublicKey is WHATSMEOW_ROOT_PUBLIC_KEY (hex of 32 bytes; default unset):
	// the Curve25519 root key the WhatsApp server's Noise certificate chain must
	// be signed by, in place of WhatsApp's own (whatsmeow.WACertPubKey). Only for
	// a local server such as the simulator (simulator/); nil keeps WhatsApp's key.
	RootPublicKey *[32]byte
	// MediaAllowPrivate is WGS_MEDIA_ALLOW_PRIVATE=1 (default 0): let media URLs reach
	// loopback, private and link-local addresses (self-hosted files, tests).
	MediaAllowPrivate bool
}

// Error is a configuration problem with one variable.
type Error struct {
	Variable string
	Problem  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid configuration: %s: %s", e.Variable, e.Problem)
}

func bad(variable, format string, args ...any) error {
	return &Error{Variable: variable, Problem: fmt.Sprintf(format, args...)}
}

// Load parses the environment; getenv is os.Getenv in production. Empty values count as unset.
func Load(getenv func(string) string) (*Config, error) {
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	c := &Config{}

	gws, err := ParseGatewayURLs(get("WGS_GATEWAY_URL"))
	if err != nil {
		return nil, err
	}
	c.GatewayURLs = gws
	for _, gw := range gws {
		c.WorkerURLs = append(c.WorkerURLs, gw+WorkerPath)
	}

	rawID := get("WGS_INSTANCE_ID")
	if rawID == "" {
		return nil, bad("WGS_INSTANCE_ID", "required")
	}
	id, err := strconv.ParseInt(rawID, 10, 64)
	if err != nil || id < 1 || id > 2147483647 {
		return nil, bad("WGS_INSTANCE_ID", "must be an integer from 1 to 2147483647 (got %q)", rawID)
	}
	c.InstanceID = id

	c.Token = getenv("WGS_WORKER_TOKEN")
	if c.Token == "" {
		return nil, bad("WGS_WORKER_TOKEN", "required")
	}

	c.Provider = get("WGS_PROVIDER")
	if c.Provider != ProviderName {
		return nil, bad("WGS_PROVIDER", "provider %q is not implemented by this worker; implemented: %s", c.Provider, ProviderName)
	}

	switch v := get("WGS_EXIT_WITH_PARENT"); v {
	case "", "0":
	case "1":
		c.ExitWithParent = true
	default:
		return nil, bad("WGS_EXIT_WITH_PARENT", "must be 0 or 1 (got %q)", v)
	}

	c.LogLevel = get("LOG_LEVEL")
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if !contains(LogLevels, c.LogLevel) {
		return nil, bad("LOG_LEVEL", "must be one of %s (got %q)", strings.Join(LogLevels, ", "), c.LogLevel)
	}

	if c.StateDSN, err = parseDSN(getenv("WGS_STATE_DSN")); err != nil {
		return nil, err
	}
	c.StateSchema = get("WGS_STATE_SCHEMA")
	if c.StateSchema == "" {
		return nil, bad("WGS_STATE_SCHEMA", "required when WGS_PROVIDER is %s", ProviderName)
	}
	if !schemaPattern.MatchString(c.StateSchema) {
		return nil, bad("WGS_STATE_SCHEMA", "must match %s (got %q)", schemaPattern, c.StateSchema)
	}

	if c.WhatsAppURL, err = parseWhatsAppURL(get("WHATSMEOW_WS_URL")); err != nil {
		return nil, err
	}
	if c.RootPublicKey, err = parseRootPublicKey(get("WHATSMEOW_ROOT_PUBLIC_KEY")); err != nil {
		return nil, err
	}
	switch v := get("WGS_MEDIA_ALLOW_PRIVATE"); v {
	case "", "0":
	case "1":
		c.MediaAllowPrivate = true
	default:
		return nil, bad("WGS_MEDIA_ALLOW_PRIVATE", "must be 0 or 1 (got %q)", v)
	}
	return c, nil
}

// ParseGatewayURLs reads WGS_GATEWAY_URL: one ws:// or wss:// base URL, or a
// comma-separated list of them (one per gateway replica; blanks around the
// commas are fine). Each entry is checked like a single URL; an error names
// the bad entry (never its credentials). Duplicates (after normalising) are
// dropped, the first one kept.
func ParseGatewayURLs(value string) ([]string, error) {
	const name = "WGS_GATEWAY_URL"
	if value == "" {
		return nil, bad(name, "required")
	}
	entries := strings.Split(value, ",")
	var urls []string
	for i, entry := range entries {
		entry = strings.TrimSpace(entry)
		which := ""
		if len(entries) > 1 {
			which = fmt.Sprintf("entry %d of %d: ", i+1, len(entries))
		}
		if entry == "" {
			return nil, bad(name, "%sempty (expected a ws:// or wss:// URL)", which)
		}
		u, problem := parseGatewayURL(entry)
		if problem != "" {
			return nil, bad(name, "%s%s", which, problem)
		}
		if !contains(urls, u) {
			urls = append(urls, u)
		}
	}
	return urls, nil
}

// parseGatewayURL normalises one base URL; problem says what is wrong with it.
func parseGatewayURL(value string) (normalised, problem string) {
	u, err := url.Parse(value)
	if err != nil || u.Host == "" {
		return "", fmt.Sprintf("not a URL (got %q)", value)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return "", fmt.Sprintf("must start with ws:// or wss:// (got %q)", value)
	}
	// The worker authenticates with its token; credentials in the URL would end up in logs.
	if u.User != nil {
		return "", "must not contain credentials"
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(value, "?#") {
		return "", fmt.Sprintf("must be a base URL without query or fragment (got %q)", value)
	}
	// As the TypeScript worker (WHATWG URL): host names are case-insensitive and a default port is implied.
	host := strings.ToLower(u.Host)
	if (u.Scheme == "ws" && strings.HasSuffix(host, ":80")) || (u.Scheme == "wss" && strings.HasSuffix(host, ":443")) {
		host = host[:strings.LastIndex(host, ":")]
	}
	return strings.TrimRight(u.Scheme+"://"+host+u.EscapedPath(), "/"), ""
}

// parseDSN checks the shape of the state DSN; the value is never shown (it carries a password).
func parseDSN(value string) (string, error) {
	const name = "WGS_STATE_DSN"
	if value == "" {
		return "", bad(name, "required when WGS_PROVIDER is %s", ProviderName)
	}
	u, err := url.Parse(value)
	if err != nil {
		return "", bad(name, "not a URL (value not shown: it is secret)")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", bad(name, "must start with postgres:// or postgresql:// (got %s://…)", u.Scheme)
	}
	if u.Hostname() == "" {
		return "", bad(name, "must name a host")
	}
	if u.User == nil || u.User.Username() == "" {
		return "", bad(name, "must name the instance's role as its user")
	}
	if strings.Trim(u.Path, "/") == "" {
		return "", bad(name, "must name a database")
	}
	return value, nil
}

func parseWhatsAppURL(value string) (*url.URL, error) {
	const name = "WHATSMEOW_WS_URL"
	if value == "" {
		value = DefaultWhatsAppURL
	}
	u, err := url.Parse(value)
	if err != nil || u.Host == "" {
		return nil, bad(name, "not a URL (got %q)", value)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, bad(name, "must start with ws:// or wss:// (got %q)", value)
	}
	return u, nil
}

// parseRootPublicKey reads a 32-byte key written as 64 hex digits; empty means unset.
func parseRootPublicKey(value string) (*[32]byte, error) {
	const name = "WHATSMEOW_ROOT_PUBLIC_KEY"
	if value == "" {
		return nil, nil
	}
	raw, err := hex.DecodeString(value)
	if err != nil || len(raw) != 32 {
		return nil, bad(name, "must be 64 hex digits (a 32-byte Curve25519 public key), got %d characters", len(value))
	}
	key := [32]byte(raw)
	return &key, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Redacted is the config as it may be logged: no token, no DSN password.
func (c *Config) Redacted() map[string]any {
	where := "?"
	if u, err := url.Parse(c.StateDSN); err == nil {
		where = u.Hostname() + ":" + u.Port() + u.Path
		if u.User != nil {
			where = u.User.Username() + "@" + where
		}
	}
	return map[string]any{
		"gateways":       c.WorkerURLs,
		"instanceId":     c.InstanceID,
		"provider":       c.Provider,
		"state":          where,
		"schema":         c.StateSchema,
		"exitWithParent": c.ExitWithParent,
		"whatsappUrl":    c.WhatsAppURL.String(),
		"rootPublicKey":  rootKeyHex(c.RootPublicKey),
	}
}

func rootKeyHex(key *[32]byte) string {
	if key == nil {
		return "whatsapp"
	}
	return hex.EncodeToString(key[:])
}
