package wa

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"

	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

var (
	self = types.NewADJID("15550001111", 0, 3)
	now  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

func parse(t *testing.T, args string) *protocol.SendArgs {
	t.Helper()
	a, err := protocol.ParseSend(json.RawMessage(args))
	if err != nil {
		t.Fatalf("ParseSend(%s): %v", args, err)
	}
	return a
}

func uploaded(mimetype, filename string) *Uploaded {
	return &Uploaded{
		UploadResponse: whatsmeow.UploadResponse{
			URL: "https://mmg.example/x", DirectPath: "/v/t62/x", MediaKey: []byte{1, 2}, FileEncSHA256: []byte{3}, FileSHA256: []byte{4}, FileLength: 42,
		},
		Mimetype: mimetype, Filename: filename,
	}
}

const media = `"media":{"data":"aGk=","mimetype":"image/png"}`

func TestBuildText(t *testing.T) {
	m, err := BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"text","text":"hello"}`), self, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if m.GetConversation() != "hello" || m.ExtendedTextMessage != nil {
		t.Errorf("plain text should be a Conversation: %v", m)
	}
}

func TestBuildTextReplyQuotes(t *testing.T) {
	m, err := BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"text","text":"re","replyTo":{"id":"ABC","chat":"15550002222","fromMe":false}}`), self, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	x := m.GetExtendedTextMessage()
	if x.GetText() != "re" {
		t.Fatalf("reply must be an ExtendedTextMessage: %v", m)
	}
	ci := x.GetContextInfo()
	if ci.GetStanzaID() != "ABC" || ci.GetParticipant() != "15550002222@s.whatsapp.net" || ci.QuotedMessage == nil {
		t.Errorf("context info: %v", ci)
	}
	// Quoting our own message names our own (non-device) JID.
	m, _ = BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"location","location":{"latitude":1,"longitude":2},"replyTo":{"id":"OWN","chat":"15550002222","fromMe":true}}`), self, nil, now)
	if p := m.GetLocationMessage().GetContextInfo().GetParticipant(); p != "15550001111@s.whatsapp.net" {
		t.Errorf("own quote participant = %q", p)
	}
}

func checkMedia(t *testing.T, url, direct string, key []byte, mimetype string, length uint64, ts int64) {
	t.Helper()
	if url != "https://mmg.example/x" || direct != "/v/t62/x" || len(key) != 2 || length != 42 || ts != now.Unix() {
		t.Errorf("media fields: url=%q direct=%q key=%v len=%d ts=%d", url, direct, key, length, ts)
	}
	if mimetype == "" {
		t.Errorf("mimetype missing")
	}
}

func TestBuildMediaTypes(t *testing.T) {
	img, err := BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"image","caption":"cap",`+media+`}`), self, uploaded("image/png", ""), now)
	if err != nil {
		t.Fatal(err)
	}
	x := img.GetImageMessage()
	checkMedia(t, x.GetURL(), x.GetDirectPath(), x.GetMediaKey(), x.GetMimetype(), x.GetFileLength(), x.GetMediaKeyTimestamp())
	if x.GetCaption() != "cap" || x.GetMimetype() != "image/png" || string(x.GetFileSHA256()) != "\x04" || string(x.GetFileEncSHA256()) != "\x03" {
		t.Errorf("image: %v", x)
	}

	vid, _ := BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"video",`+media+`}`), self, uploaded("video/mp4", ""), now)
	v := vid.GetVideoMessage()
	checkMedia(t, v.GetURL(), v.GetDirectPath(), v.GetMediaKey(), v.GetMimetype(), v.GetFileLength(), v.GetMediaKeyTimestamp())
	if v.Caption != nil {
		t.Errorf("no caption given, got %q", v.GetCaption())
	}

	for _, ptt := range []bool{true, false} {
		extra := ""
		if ptt {
			extra = `"ptt":true,`
		}
		aud, _ := BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"audio",`+extra+media+`}`), self, uploaded("audio/ogg; codecs=opus", ""), now)
		a := aud.GetAudioMessage()
		checkMedia(t, a.GetURL(), a.GetDirectPath(), a.GetMediaKey(), a.GetMimetype(), a.GetFileLength(), a.GetMediaKeyTimestamp())
		if a.GetPTT() != ptt {
			t.Errorf("audio ptt = %v, want %v", a.GetPTT(), ptt)
		}
	}

	doc, _ := BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"document","caption":"see",`+media+`}`), self, uploaded("application/pdf", "report.pdf"), now)
	d := doc.GetDocumentMessage()
	checkMedia(t, d.GetURL(), d.GetDirectPath(), d.GetMediaKey(), d.GetMimetype(), d.GetFileLength(), d.GetMediaKeyTimestamp())
	if d.GetFileName() != "report.pdf" || d.GetTitle() != "report.pdf" || d.GetCaption() != "see" {
		t.Errorf("document: %v", d)
	}

	st, _ := BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"sticker",`+media+`}`), self, uploaded("image/webp", ""), now)
	s := st.GetStickerMessage()
	checkMedia(t, s.GetURL(), s.GetDirectPath(), s.GetMediaKey(), s.GetMimetype(), s.GetFileLength(), s.GetMediaKeyTimestamp())

	if _, err := BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"image",`+media+`}`), self, nil, now); err == nil {
		t.Error("an image without an upload must fail")
	}
}

func TestBuildLocationAndContact(t *testing.T) {
	loc, _ := BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"location","location":{"latitude":52.5,"longitude":-13.4,"name":"Café","address":"Street 1"}}`), self, nil, now)
	l := loc.GetLocationMessage()
	if l.GetDegreesLatitude() != 52.5 || l.GetDegreesLongitude() != -13.4 || l.GetName() != "Café" || l.GetAddress() != "Street 1" {
		t.Errorf("location: %v", l)
	}
	con, _ := BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"contact","contact":{"name":"Ann; B","phone":"4915112345678"}}`), self, nil, now)
	c := con.GetContactMessage()
	if c.GetDisplayName() != "Ann; B" {
		t.Errorf("contact name: %q", c.GetDisplayName())
	}
	for _, want := range []string{"BEGIN:VCARD", "VERSION:3.0", `FN:Ann\; B`, "waid=4915112345678:+4915112345678", "END:VCARD"} {
		if !strings.Contains(c.GetVcard(), want) {
			t.Errorf("vcard lacks %q:\n%s", want, c.GetVcard())
		}
	}
	if VCardPhone(c.GetVcard()) != "4915112345678" {
		t.Errorf("VCardPhone round trip: %q", VCardPhone(c.GetVcard()))
	}
}

func TestBuildReactionEditRevoke(t *testing.T) {
	r, _ := BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"reaction","emoji":"👍","target":{"id":"T1","chat":"15550002222","fromMe":false}}`), self, nil, now)
	rm := r.GetReactionMessage()
	if rm.GetText() != "👍" || rm.GetKey().GetID() != "T1" || rm.GetKey().GetFromMe() || rm.GetKey().GetRemoteJID() != "15550002222@s.whatsapp.net" || rm.GetSenderTimestampMS() != now.UnixMilli() {
		t.Errorf("reaction: %v", rm)
	}
	r, _ = BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"reaction","emoji":"","target":{"id":"T1","chat":"15550002222","fromMe":true}}`), self, nil, now)
	if r.GetReactionMessage().Text == nil || r.GetReactionMessage().GetText() != "" || !r.GetReactionMessage().GetKey().GetFromMe() {
		t.Errorf("removing a reaction sends an empty text: %v", r)
	}

	e, err := BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"edit","text":"fixed","target":{"id":"T2","chat":"15550002222","fromMe":true}}`), self, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	pm := e.GetEditedMessage().GetMessage().GetProtocolMessage()
	if pm.GetType() != waE2E.ProtocolMessage_MESSAGE_EDIT || pm.GetKey().GetID() != "T2" || !pm.GetKey().GetFromMe() ||
		pm.GetEditedMessage().GetConversation() != "fixed" || pm.GetTimestampMS() != now.UnixMilli() {
		t.Errorf("edit: %v", e)
	}

	rv, _ := BuildMessage(parse(t, `{"messageId":"m","to":"15550002222","type":"revoke","target":{"id":"T3","chat":"15550002222","fromMe":true}}`), self, nil, now)
	if rv.GetProtocolMessage().GetType() != waE2E.ProtocolMessage_REVOKE || rv.GetProtocolMessage().GetKey().GetID() != "T3" {
		t.Errorf("revoke: %v", rv)
	}

	for _, args := range []string{
		`{"messageId":"m","to":"15550002222","type":"edit","text":"x","target":{"id":"T","chat":"15550002222","fromMe":false}}`,
		`{"messageId":"m","to":"15550002222","type":"revoke","target":{"id":"T","chat":"15550002222","fromMe":false}}`,
	} {
		if _, err := BuildMessage(parse(t, args), self, nil, now); err == nil {
			t.Errorf("editing or revoking someone else's message must fail: %s", args)
		}
	}
}

func TestEveryTypeBuilds(t *testing.T) {
	samples := map[string]string{
		"text":     `"text":"x"`,
		"image":    media,
		"video":    media,
		"audio":    media,
		"document": media,
		"sticker":  media,
		"location": `"location":{"latitude":0,"longitude":0}`,
		"contact":  `"contact":{"name":"A","phone":"15550003333"}`,
		"reaction": `"emoji":"x","target":{"id":"T","chat":"15550002222","fromMe":true}`,
		"edit":     `"text":"x","target":{"id":"T","chat":"15550002222","fromMe":true}`,
		"revoke":   `"target":{"id":"T","chat":"15550002222","fromMe":true}`,
	}
	for _, typ := range protocol.SendTypes {
		fields, ok := samples[typ]
		if !ok {
			t.Errorf("no sample for send type %s", typ)
			continue
		}
		a := parse(t, `{"messageId":"m","to":"15550002222","type":"`+typ+`",`+fields+`}`)
		var up *Uploaded
		if _, isMedia := MediaType(typ); isMedia {
			up = uploaded("image/png", "f")
		}
		m, err := BuildMessage(a, self, up, now)
		if err != nil || m == nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
	_, err := BuildMessage(&protocol.SendArgs{Type: "poll", To: "15550002222"}, self, nil, now)
	var ut *protocol.UnsupportedTypeError
	if !errors.As(err, &ut) {
		t.Errorf("unknown type: %v", err)
	}
}

func TestPhones(t *testing.T) {
	j, err := PhoneJID("4915112345678")
	if err != nil || j.String() != "4915112345678@s.whatsapp.net" {
		t.Errorf("PhoneJID: %v %v", j, err)
	}
	for _, bad := range []string{"", "+4915112345678", "0151123", "123", "49 151 123", "1234567890123456"} {
		if _, err := PhoneJID(bad); err == nil {
			t.Errorf("PhoneJID(%q) should fail", bad)
		}
	}
	cases := []struct {
		jid   types.JID
		phone string
		ok    bool
	}{
		{types.NewJID("4915112345678", types.DefaultUserServer), "4915112345678", true},
		{types.NewADJID("4915112345678", 0, 2).ToNonAD(), "4915112345678", true},
		{types.NewJID("123456789", types.HiddenUserServer), "", false},
		{types.NewJID("120363000000", types.GroupServer), "", false},
		{types.StatusBroadcastJID, "", false},
		{types.NewJID("abc", types.DefaultUserServer), "", false},
	}
	for _, c := range cases {
		p, ok := PhoneOf(c.jid)
		if p != c.phone || ok != c.ok {
			t.Errorf("PhoneOf(%s) = %q %v, want %q %v", c.jid, p, ok, c.phone, c.ok)
		}
	}
}
