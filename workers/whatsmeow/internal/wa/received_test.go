package wa

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

var (
	peer   = types.NewJID("4915112345678", types.DefaultUserServer)
	sentAt = time.Date(2026, 2, 3, 4, 5, 6, 789_000_000, time.UTC)
	ident  = Identity{IsSelf: func(j types.JID) bool { return j.User == self.User }}
)

func incoming(m *waE2E.Message) *events.Message {
	return &events.Message{
		Info: types.MessageInfo{
			MessageSource: types.MessageSource{Chat: peer, Sender: peer},
			ID:            "MSG1", Timestamp: sentAt,
		},
		Message: m,
	}
}

func mapJSON(t *testing.T, m *waE2E.Message) map[string]any {
	t.Helper()
	r, err := MapReceived(incoming(m), ident)
	if err != nil {
		t.Fatalf("MapReceived: %v", err)
	}
	raw, _ := json.Marshal(r.Message)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

func TestReceivedText(t *testing.T) {
	got := mapJSON(t, &waE2E.Message{Conversation: proto.String("hi")})
	want := map[string]any{"id": "MSG1", "from": "4915112345678", "chat": "4915112345678", "type": "text", "text": "hi", "timestamp": "2026-02-03T04:05:06.789Z"}
	if !equalJSON(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	got = mapJSON(t, &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{
		Text:        proto.String("reply"),
		ContextInfo: &waE2E.ContextInfo{StanzaID: proto.String("Q1"), Participant: proto.String("15550001111@s.whatsapp.net")},
	}})
	if got["text"] != "reply" || !equalJSON(got["replyTo"], map[string]any{"id": "Q1", "chat": "4915112345678", "fromMe": true}) {
		t.Errorf("reply: %v", got)
	}
}

func TestReceivedMedia(t *testing.T) {
	r, err := MapReceived(incoming(&waE2E.Message{ImageMessage: &waE2E.ImageMessage{Mimetype: proto.String("image/jpeg"), Caption: proto.String("look"), FileLength: proto.Uint64(1234)}}), ident)
	if err != nil {
		t.Fatal(err)
	}
	if r.Message.Type != "image" || *r.Message.Caption != "look" || r.Message.Media.Mimetype != "image/jpeg" || *r.Message.Media.Size != 1234 || r.Download == nil || r.Size != 1234 {
		t.Errorf("image: %+v %+v", r.Message, r.Message.Media)
	}
	got := mapJSON(t, &waE2E.Message{AudioMessage: &waE2E.AudioMessage{Mimetype: proto.String("audio/ogg"), PTT: proto.Bool(true)}})
	if got["type"] != "audio" || got["ptt"] != true {
		t.Errorf("audio: %v", got)
	}
	got = mapJSON(t, &waE2E.Message{DocumentMessage: &waE2E.DocumentMessage{Mimetype: proto.String("application/pdf"), FileName: proto.String("a.pdf"), Caption: proto.String("c")}})
	if got["type"] != "document" || got["caption"] != "c" || got["media"].(map[string]any)["filename"] != "a.pdf" {
		t.Errorf("document: %v", got)
	}
	for typ, m := range map[string]*waE2E.Message{
		"video":   {VideoMessage: &waE2E.VideoMessage{Mimetype: proto.String("video/mp4")}},
		"sticker": {StickerMessage: &waE2E.StickerMessage{Mimetype: proto.String("image/webp")}},
	} {
		if got := mapJSON(t, m); got["type"] != typ || got["media"] == nil {
			t.Errorf("%s: %v", typ, got)
		}
	}
}

func TestReceivedLocationContactReaction(t *testing.T) {
	got := mapJSON(t, &waE2E.Message{LocationMessage: &waE2E.LocationMessage{DegreesLatitude: proto.Float64(1.5), DegreesLongitude: proto.Float64(-2), Name: proto.String("Home")}})
	if !equalJSON(got["location"], map[string]any{"latitude": 1.5, "longitude": -2.0, "name": "Home"}) {
		t.Errorf("location: %v", got)
	}
	vcard := VCard("Bob", "15550009999")
	got = mapJSON(t, &waE2E.Message{ContactMessage: &waE2E.ContactMessage{DisplayName: proto.String("Bob"), Vcard: proto.String(vcard)}})
	if !equalJSON(got["contact"], map[string]any{"name": "Bob", "phone": "15550009999", "vcard": vcard}) {
		t.Errorf("contact: %v", got)
	}
	// The other party reacts to our message: in their key it is not theirs.
	got = mapJSON(t, &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{Text: proto.String("❤️"), Key: &waCommon.MessageKey{ID: proto.String("OURS"), FromMe: proto.Bool(false)}}})
	if got["type"] != "reaction" || got["emoji"] != "❤️" || !equalJSON(got["target"], map[string]any{"id": "OURS", "chat": "4915112345678", "fromMe": true}) {
		t.Errorf("reaction: %v", got)
	}
	got = mapJSON(t, &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{Text: proto.String(""), Key: &waCommon.MessageKey{ID: proto.String("THEIRS"), FromMe: proto.Bool(true)}}})
	if got["emoji"] != "" || got["target"].(map[string]any)["fromMe"] != false {
		t.Errorf("reaction removed: %v", got)
	}
}

func TestReceivedEditRevokeUnknown(t *testing.T) {
	edit := &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
		Type: waE2E.ProtocolMessage_MESSAGE_EDIT.Enum(), Key: &waCommon.MessageKey{ID: proto.String("E1"), FromMe: proto.Bool(true)},
		EditedMessage: &waE2E.Message{Conversation: proto.String("new text")},
	}}
	got := mapJSON(t, edit)
	if got["type"] != "edit" || got["text"] != "new text" || !equalJSON(got["target"], map[string]any{"id": "E1", "chat": "4915112345678", "fromMe": false}) {
		t.Errorf("edit: %v", got)
	}
	got = mapJSON(t, &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_REVOKE.Enum(), Key: &waCommon.MessageKey{ID: proto.String("R1"), FromMe: proto.Bool(true)}}})
	if got["type"] != "revoke" || got["target"].(map[string]any)["id"] != "R1" {
		t.Errorf("revoke: %v", got)
	}
	got = mapJSON(t, &waE2E.Message{PollCreationMessage: &waE2E.PollCreationMessage{Name: proto.String("?")}})
	if got["type"] != "unknown" || got["id"] != "MSG1" {
		t.Errorf("unknown: %v", got)
	}
}

func TestReceivedSkips(t *testing.T) {
	text := &waE2E.Message{Conversation: proto.String("x")}
	group := incoming(text)
	group.Info.Chat, group.Info.IsGroup = types.NewJID("120363000000", types.GroupServer), true
	status := incoming(text)
	status.Info.Chat = types.StatusBroadcastJID
	mine := incoming(text)
	mine.Info.IsFromMe = true
	lid := incoming(text)
	lid.Info.Sender, lid.Info.Chat = types.NewJID("99887766", types.HiddenUserServer), types.NewJID("99887766", types.HiddenUserServer)
	keyShare := incoming(&waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_APP_STATE_SYNC_KEY_SHARE.Enum()}})
	cases := map[string]struct {
		evt  *events.Message
		want error
	}{
		"group":    {group, ErrSkipGroup},
		"status":   {status, ErrSkipGroup},
		"fromMe":   {mine, ErrSkipFromMe},
		"lid":      {lid, ErrSkipNoPhone},
		"protocol": {keyShare, ErrSkipProtocol},
	}
	for name, c := range cases {
		if _, err := MapReceived(c.evt, ident); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
	// A LID sender with its phone number as the alternative address is reported by phone.
	lid.Info.SenderAlt = peer
	r, err := MapReceived(lid, ident)
	if err != nil || r.Message.From != "4915112345678" {
		t.Errorf("LID with phone alt: %v %v", r, err)
	}
	// Or resolved through the store's LID map.
	lid.Info.SenderAlt = types.EmptyJID
	resolving := Identity{Phone: func(j types.JID) (string, bool) { return "15550004444", j.Server == types.HiddenUserServer }}
	r, err = MapReceived(lid, resolving)
	if err != nil || r.Message.From != "15550004444" {
		t.Errorf("LID resolved: %v %v", r, err)
	}
}

func TestReceiptStatus(t *testing.T) {
	cases := map[types.ReceiptType]string{
		types.ReceiptTypeDelivered: protocol.StatusDelivered,
		types.ReceiptTypeRead:      protocol.StatusRead,
		types.ReceiptTypePlayed:    protocol.StatusRead,
	}
	for typ, want := range cases {
		if got, ok := receiptStatus(typ); !ok || got != want {
			t.Errorf("receipt %q: %q %v", typ, got, ok)
		}
	}
	for _, typ := range []types.ReceiptType{types.ReceiptTypeSender, types.ReceiptTypeRetry, types.ReceiptTypeReadSelf} {
		if _, ok := receiptStatus(typ); ok {
			t.Errorf("receipt %q should not be a status", typ)
		}
	}
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
