// Package protocol is the worker ↔ gateway protocol v1 as Go types
// (workers/protocol/frames.ts is the schema; README.md beside it explains it).
package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Version is the protocol version this worker speaks.
const Version = 1

// Close codes the gateway uses.
const (
	CloseUnauthorized        = 4401
	CloseUnsupportedProtocol = 4426
	CloseReplaced            = 4409
	CloseBadFrame            = 4400
)

// State is a WhatsApp session state reported in `state` frames.
type State string

// The session states of protocol v1.
const (
	StateStarting     State = "starting"
	StateQR           State = "qr"
	StatePairing      State = "pairing"
	StateConnected    State = "connected"
	StateReconnecting State = "reconnecting"
	StateLoggedOut    State = "logged_out"
	StateFailed       State = "failed"
)

// Result error codes.
const (
	CodeNotConnected       = "not_connected"
	CodeInvalidArgs        = "invalid_args"
	CodeUnsupportedCommand = "unsupported_command"
	CodeNotReady           = "not_ready"
	CodeAlreadyConnected   = "already_connected"
	CodeSendFailed         = "send_failed"
	CodeMediaFailed        = "media_failed"
	// CodeRateLimited is WhatsApp's rate limit or a temporary block on sending: the gateway pauses the number.
	CodeRateLimited = "rate_limited"
	CodeInternal    = "internal"
)

// Command names of protocol v1.
const (
	CommandSend           = "send"
	CommandRead           = "read"
	CommandPairCode       = "pair-code"
	CommandLogout         = "logout"
	CommandSandboxScan    = "sandbox.scan"
	CommandSandboxInbound = "sandbox.inbound"
	CommandSandboxFaults  = "sandbox.faults"
	CommandPresence       = "presence"
)

// CommandNames lists every command the protocol knows (not all are implemented by every provider).
var CommandNames = []string{CommandSend, CommandRead, CommandPairCode, CommandPresence, CommandLogout, CommandSandboxScan, CommandSandboxInbound, CommandSandboxFaults}

// CommandError is a failed command: code is machine-readable, message is for people.
type CommandError struct {
	Code    string
	Message string
	Err     error
}

func (e *CommandError) Error() string { return e.Code + ": " + e.Message }
func (e *CommandError) Unwrap() error { return e.Err }

// Errorf builds a CommandError.
func Errorf(code, format string, args ...any) *CommandError {
	return &CommandError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ---------------------------------------------------------------- worker → gateway

// Hello is the first frame on every connection.
type Hello struct {
	Type          string `json:"type"`
	Protocol      int    `json:"protocol"`
	InstanceID    int64  `json:"instanceId"`
	Token         string `json:"token"`
	Provider      string `json:"provider"`
	WorkerVersion string `json:"workerVersion"`
}

// StateFrame reports the session state.
type StateFrame struct {
	Type   string `json:"type"`
	State  State  `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// QRFrame is a QR code to scan until ExpiresAt.
type QRFrame struct {
	Type      string `json:"type"`
	Code      string `json:"code"`
	ExpiresAt string `json:"expiresAt"`
}

// EventFrame carries an event until the gateway acks its id.
type EventFrame struct {
	Type    string      `json:"type"`
	EventID string      `json:"eventId"`
	Event   WorkerEvent `json:"event"`
}

// WorkerEvent is message.received (Data *ReceivedMessage) or message.status (Data *MessageStatus).
type WorkerEvent struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// ResultFrame is the outcome of a command.
type ResultFrame struct {
	Type      string `json:"type"`
	CommandID int64  `json:"commandId"`
	OK        bool   `json:"ok"`
	// Data is a map[string]any on success (never nil, so `{}` stays on the wire), nil on failure.
	Data  any          `json:"data,omitempty"`
	Error *ResultError `json:"error,omitempty"`
}

// ResultError is a failed result's error.
type ResultError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// PingFrame and PongFrame keep the connection alive. A worker's ping carries
// its Usage; a pong never does.
type PingFrame struct {
	Type  string  `json:"type"`
	T     float64 `json:"t"`
	Usage *Usage  `json:"usage,omitempty"`
}

// Usage is what the worker's process uses: its resident set size now and its
// user + system CPU time since it started.
type Usage struct {
	RSSBytes   int64   `json:"rssBytes"`
	CPUSeconds float64 `json:"cpuSeconds"`
}

// Success builds an ok result; data is never nil on the wire.
func Success(commandID int64, data map[string]any) ResultFrame {
	if data == nil {
		data = map[string]any{}
	}
	return ResultFrame{Type: "result", CommandID: commandID, OK: true, Data: data}
}

// Failure builds a failed result.
func Failure(commandID int64, code, message string) ResultFrame {
	return ResultFrame{Type: "result", CommandID: commandID, OK: false, Error: &ResultError{Code: code, Message: message}}
}

// ---------------------------------------------------------------- events

// Message statuses reported in message.status events.
const (
	StatusSent      = "sent"
	StatusDelivered = "delivered"
	StatusRead      = "read"
	StatusFailed    = "failed"
)

// MessageStatus is the data of a message.status event.
type MessageStatus struct {
	MessageID string `json:"messageId"`
	Status    string `json:"status"`
	Error     string `json:"error,omitempty"`
	Timestamp string `json:"timestamp"`
}

// StatusEvent builds a message.status event.
func StatusEvent(messageID, status string, at time.Time) WorkerEvent {
	return WorkerEvent{Type: "message.status", Data: &MessageStatus{MessageID: messageID, Status: status, Timestamp: Timestamp(at)}}
}

// ReceivedEvent builds a message.received event.
func ReceivedEvent(m *ReceivedMessage) WorkerEvent {
	return WorkerEvent{Type: "message.received", Data: m}
}

// Timestamp formats a time as the protocol's ISO 8601 (UTC, milliseconds), like JavaScript's toISOString.
func Timestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// ReceivedMedia is media in a received message: base64 Data, or only Size when too large.
type ReceivedMedia struct {
	Data     string `json:"data,omitempty"`
	Mimetype string `json:"mimetype"`
	Filename string `json:"filename,omitempty"`
	Size     *int64 `json:"size,omitempty"`
}

// ReceivedLocation is a received location.
type ReceivedLocation struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Name      string  `json:"name,omitempty"`
	Address   string  `json:"address,omitempty"`
}

// ReceivedContact is a received contact card.
type ReceivedContact struct {
	Name  string `json:"name"`
	Phone string `json:"phone,omitempty"`
	Vcard string `json:"vcard,omitempty"`
}

// ReceivedMessage is the one shape of message.received for every provider.
type ReceivedMessage struct {
	ID        string            `json:"id"`
	From      string            `json:"from"`
	Chat      string            `json:"chat,omitempty"`
	Type      string            `json:"type"`
	Text      *string           `json:"text,omitempty"`
	Caption   *string           `json:"caption,omitempty"`
	Media     *ReceivedMedia    `json:"media,omitempty"`
	PTT       *bool             `json:"ptt,omitempty"`
	Location  *ReceivedLocation `json:"location,omitempty"`
	Contact   *ReceivedContact  `json:"contact,omitempty"`
	Emoji     *string           `json:"emoji,omitempty"`
	Target    *MessageRef       `json:"target,omitempty"`
	ReplyTo   *MessageRef       `json:"replyTo,omitempty"`
	Timestamp string            `json:"timestamp"`
}

// ---------------------------------------------------------------- gateway → worker

// Welcome accepts the hello.
type Welcome struct {
	Protocol   int64
	InstanceID int64
	Phone      string
}

// Command is a command from the gateway's queue.
type Command struct {
	CommandID int64
	Name      string
	Args      json.RawMessage
}

// GatewayFrame is one decoded frame from the gateway: exactly one field is set.
type GatewayFrame struct {
	Welcome *Welcome
	Command *Command
	// Ack is the acked eventId.
	Ack *string
	// Ping and Pong carry the frame's t.
	Ping *float64
	Pong *float64
}

type rawGatewayFrame struct {
	Type       string          `json:"type"`
	Protocol   *json.Number    `json:"protocol"`
	InstanceID *json.Number    `json:"instanceId"`
	Phone      *string         `json:"phone"`
	CommandID  *json.Number    `json:"commandId"`
	Name       *string         `json:"name"`
	Args       json.RawMessage `json:"args"`
	EventID    *string         `json:"eventId"`
	T          *json.Number    `json:"t"`
}

// ParseGatewayFrame decodes and checks a frame from the gateway. Command
// names are not checked against CommandNames: an unknown name is answered
// with unsupported_command by the command runner.
func ParseGatewayFrame(data []byte) (*GatewayFrame, error) {
	var raw rawGatewayFrame
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	switch raw.Type {
	case "welcome":
		protocol, err1 := integer(raw.Protocol)
		instance, err2 := integer(raw.InstanceID)
		if err1 != nil || err2 != nil || raw.Phone == nil {
			return nil, fmt.Errorf("welcome needs integer protocol and instanceId and a phone")
		}
		return &GatewayFrame{Welcome: &Welcome{Protocol: protocol, InstanceID: instance, Phone: *raw.Phone}}, nil
	case "command":
		id, err := integer(raw.CommandID)
		if err != nil || raw.Name == nil {
			return nil, fmt.Errorf("command needs an integer commandId and a name")
		}
		if !isObject(raw.Args) {
			return nil, fmt.Errorf("command args must be an object")
		}
		return &GatewayFrame{Command: &Command{CommandID: id, Name: *raw.Name, Args: raw.Args}}, nil
	case "ack":
		if raw.EventID == nil {
			return nil, fmt.Errorf("ack needs an eventId")
		}
		return &GatewayFrame{Ack: raw.EventID}, nil
	case "ping", "pong":
		if raw.T == nil {
			return nil, fmt.Errorf("%s needs a number t", raw.Type)
		}
		t, err := raw.T.Float64()
		if err != nil {
			return nil, fmt.Errorf("%s needs a number t: %w", raw.Type, err)
		}
		if raw.Type == "ping" {
			return &GatewayFrame{Ping: &t}, nil
		}
		return &GatewayFrame{Pong: &t}, nil
	default:
		return nil, fmt.Errorf("unknown frame type %q", raw.Type)
	}
}

func integer(n *json.Number) (int64, error) {
	if n == nil {
		return 0, fmt.Errorf("missing")
	}
	return n.Int64()
}

func isObject(raw json.RawMessage) bool {
	trimmed := bytes.TrimSpace(raw)
	return len(trimmed) > 0 && trimmed[0] == '{'
}
