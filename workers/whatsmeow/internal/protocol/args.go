package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"unicode/utf8"
)

// MaxInlineMediaBytes is the most a base64 media.data may hold once decoded.
const MaxInlineMediaBytes = 16 * 1024 * 1024

// PhonePattern is a phone number: digits only (E.164 without the plus), 7 to 15 of them.
var PhonePattern = regexp.MustCompile(`^[1-9][0-9]{6,14}$`)

var (
	httpsPattern    = regexp.MustCompile(`^https://\S+$`)
	mimetypePattern = regexp.MustCompile(`^[a-z]+/[A-Za-z0-9.+_-]+(;.*)?$`)
)

// SendTypes are the message types of `send`, in frames.ts order.
var SendTypes = []string{"text", "image", "video", "audio", "document", "sticker", "location", "contact", "reaction", "edit", "revoke"}

// MessageRef points at a message: the provider's id, the chat (the other party's phone), who sent it.
type MessageRef struct {
	ID     string `json:"id"`
	Chat   string `json:"chat"`
	FromMe bool   `json:"fromMe"`
}

// MediaInput is media to send: exactly one of URL or Data.
type MediaInput struct {
	URL      string
	Data     string
	Mimetype string
	Filename string
}

// LocationInput is a location to send.
type LocationInput struct {
	Latitude  float64
	Longitude float64
	Name      string
	Address   string
}

// ContactInput is a contact card to send.
type ContactInput struct {
	Name  string
	Phone string
}

// SendArgs are the arguments of `send`; which fields are set depends on Type.
type SendArgs struct {
	MessageID string
	To        string
	Type      string
	ReplyTo   *MessageRef
	Text      string
	Caption   string
	Media     *MediaInput
	PTT       bool
	Location  *LocationInput
	Contact   *ContactInput
	Target    *MessageRef
	Emoji     string
}

// ReadArgs are the arguments of `read`.
type ReadArgs struct {
	Chat       string
	MessageIDs []string
}

// PairCodeArgs are the arguments of `pair-code`.
type PairCodeArgs struct {
	Phone string
}

// Presence states of the `presence` command.
const (
	PresenceComposing = "composing"
	PresencePaused    = "paused"
)

// PresenceArgs are the arguments of `presence`: the typing indicator in one chat.
type PresenceArgs struct {
	Chat  string
	State string
}

// UnsupportedTypeError is a send whose type this worker does not know.
type UnsupportedTypeError struct{ Type string }

func (e *UnsupportedTypeError) Error() string {
	return fmt.Sprintf("message type %q is not supported", e.Type)
}

// ArgsError names the first argument that does not fit the command's schema.
type ArgsError struct {
	Path    string
	Problem string
}

func (e *ArgsError) Error() string { return e.Path + ": " + e.Problem }

// object walks a decoded JSON object, remembering the first problem.
type object struct {
	path string
	m    map[string]any
	err  *ArgsError
}

func decodeObject(raw json.RawMessage) (map[string]any, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, &ArgsError{Path: "args", Problem: "expected an object"}
	}
	return m, nil
}

func (o *object) fail(key, format string, args ...any) {
	if o.err == nil {
		o.err = &ArgsError{Path: o.path + "/" + key, Problem: fmt.Sprintf(format, args...)}
	}
}

type strRule struct {
	required bool
	min, max int // in characters; max 0 means unbounded
	pattern  *regexp.Regexp
}

func (o *object) str(key string, rule strRule) string {
	v, ok := o.m[key]
	if !ok {
		if rule.required {
			o.fail(key, "required")
		}
		return ""
	}
	s, ok := v.(string)
	if !ok {
		o.fail(key, "expected a string")
		return ""
	}
	n := utf8.RuneCountInString(s)
	if n < rule.min {
		o.fail(key, "expected at least %d characters", rule.min)
	}
	if rule.max > 0 && n > rule.max {
		o.fail(key, "expected at most %d characters", rule.max)
	}
	if rule.pattern != nil && !rule.pattern.MatchString(s) {
		o.fail(key, "expected a string matching %s", rule.pattern)
	}
	return s
}

func (o *object) boolean(key string, required bool) bool {
	v, ok := o.m[key]
	if !ok {
		if required {
			o.fail(key, "required")
		}
		return false
	}
	b, ok := v.(bool)
	if !ok {
		o.fail(key, "expected a boolean")
	}
	return b
}

func (o *object) number(key string, lo, hi float64) float64 {
	v, ok := o.m[key]
	if !ok {
		o.fail(key, "required")
		return 0
	}
	n, ok := v.(json.Number)
	if !ok {
		o.fail(key, "expected a number")
		return 0
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < lo || f > hi {
		o.fail(key, "expected a number from %g to %g", lo, hi)
	}
	return f
}

// child returns the nested object at key (nil when absent and optional).
func (o *object) child(key string, required bool) *object {
	v, ok := o.m[key]
	if !ok {
		if required {
			o.fail(key, "required")
		}
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		o.fail(key, "expected an object")
		return nil
	}
	return &object{path: o.path + "/" + key, m: m}
}

// adopt copies a child's first problem.
func (o *object) adopt(c *object) {
	if c != nil && c.err != nil && o.err == nil {
		o.err = c.err
	}
}

func (o *object) messageRef(key string, required bool) *MessageRef {
	c := o.child(key, required)
	if c == nil {
		return nil
	}
	ref := &MessageRef{
		ID:     c.str("id", strRule{required: true, min: 1, max: 256}),
		Chat:   c.str("chat", strRule{required: true, pattern: PhonePattern}),
		FromMe: c.boolean("fromMe", true),
	}
	o.adopt(c)
	return ref
}

func (o *object) media() *MediaInput {
	c := o.child("media", true)
	if c == nil {
		return nil
	}
	m := &MediaInput{
		URL:      c.str("url", strRule{pattern: httpsPattern, max: 4096}),
		Data:     c.str("data", strRule{min: 1}),
		Mimetype: c.str("mimetype", strRule{required: true, pattern: mimetypePattern, max: 255}),
		Filename: c.str("filename", strRule{min: 1, max: 255}),
	}
	o.adopt(c)
	if o.err == nil {
		switch {
		case m.URL == "" && m.Data == "":
			o.fail("media", "needs one of url or data")
		case m.URL != "" && m.Data != "":
			o.fail("media", "needs exactly one of url or data, not both")
		case m.Data != "" && base64.StdEncoding.DecodedLen(len(m.Data)) > MaxInlineMediaBytes+3:
			o.fail("media/data", "more than %d bytes once decoded", MaxInlineMediaBytes)
		}
	}
	return m
}

// ParseSend checks `send` arguments against frames.ts SendMessageTypes.
// An unknown type is an *UnsupportedTypeError, other problems an *ArgsError.
func ParseSend(raw json.RawMessage) (*SendArgs, error) {
	m, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	o := &object{m: m}
	a := &SendArgs{Type: o.str("type", strRule{required: true})}
	if o.err != nil {
		return nil, o.err
	}
	if !containsString(SendTypes, a.Type) {
		return nil, &UnsupportedTypeError{Type: a.Type}
	}
	a.MessageID = o.str("messageId", strRule{required: true, min: 1})
	a.To = o.str("to", strRule{required: true, pattern: PhonePattern})
	a.ReplyTo = o.messageRef("replyTo", false)
	caption := strRule{max: 4096}
	switch a.Type {
	case "text", "edit":
		a.Text = o.str("text", strRule{required: true, min: 1, max: 65536})
		if a.Type == "edit" {
			a.Target = o.messageRef("target", true)
		}
	case "image", "video", "document":
		a.Media = o.media()
		a.Caption = o.str("caption", caption)
	case "audio":
		a.Media = o.media()
		a.PTT = o.boolean("ptt", false)
	case "sticker":
		a.Media = o.media()
	case "location":
		if c := o.child("location", true); c != nil {
			a.Location = &LocationInput{
				Latitude:  c.number("latitude", -90, 90),
				Longitude: c.number("longitude", -180, 180),
				Name:      c.str("name", strRule{max: 1024}),
				Address:   c.str("address", strRule{max: 1024}),
			}
			o.adopt(c)
		}
	case "contact":
		if c := o.child("contact", true); c != nil {
			a.Contact = &ContactInput{
				Name:  c.str("name", strRule{required: true, min: 1, max: 256}),
				Phone: c.str("phone", strRule{required: true, pattern: PhonePattern}),
			}
			o.adopt(c)
		}
	case "reaction":
		a.Target = o.messageRef("target", true)
		a.Emoji = o.str("emoji", strRule{required: true, max: 32})
	case "revoke":
		a.Target = o.messageRef("target", true)
	}
	if o.err != nil {
		return nil, o.err
	}
	return a, nil
}

// ParseRead checks `read` arguments.
func ParseRead(raw json.RawMessage) (*ReadArgs, error) {
	m, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	o := &object{m: m}
	a := &ReadArgs{Chat: o.str("chat", strRule{required: true, pattern: PhonePattern})}
	list, ok := m["messageIds"].([]any)
	switch {
	case m["messageIds"] == nil:
		o.fail("messageIds", "required")
	case !ok:
		o.fail("messageIds", "expected an array")
	case len(list) < 1 || len(list) > 100:
		o.fail("messageIds", "expected 1 to 100 ids")
	default:
		for i, v := range list {
			s, ok := v.(string)
			if !ok || s == "" || utf8.RuneCountInString(s) > 256 {
				o.fail(fmt.Sprintf("messageIds/%d", i), "expected a string of 1 to 256 characters")
				break
			}
			a.MessageIDs = append(a.MessageIDs, s)
		}
	}
	if o.err != nil {
		return nil, o.err
	}
	return a, nil
}

// ParsePairCode checks `pair-code` arguments.
func ParsePairCode(raw json.RawMessage) (*PairCodeArgs, error) {
	m, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	o := &object{m: m}
	a := &PairCodeArgs{Phone: o.str("phone", strRule{required: true, pattern: PhonePattern})}
	if o.err != nil {
		return nil, o.err
	}
	return a, nil
}

// ParsePresence checks `presence` arguments.
func ParsePresence(raw json.RawMessage) (*PresenceArgs, error) {
	m, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	o := &object{m: m}
	a := &PresenceArgs{Chat: o.str("chat", strRule{required: true, pattern: PhonePattern}), State: o.str("state", strRule{required: true})}
	if o.err == nil && a.State != PresenceComposing && a.State != PresencePaused {
		o.fail("state", "expected composing or paused")
	}
	if o.err != nil {
		return nil, o.err
	}
	return a, nil
}

// ParseEmpty checks the arguments of commands that take none (`logout`).
func ParseEmpty(raw json.RawMessage) error {
	_, err := decodeObject(raw)
	return err
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
