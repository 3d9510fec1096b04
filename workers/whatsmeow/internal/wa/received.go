package wa

import (
	"errors"
	"regexp"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

// Why a received message is not reported (logged at debug).
var (
	ErrSkipGroup     = errors.New("group, broadcast or newsletter message (not reported yet)")
	ErrSkipFromMe    = errors.New("sent by this account from another device")
	ErrSkipProtocol  = errors.New("protocol message without user content")
	ErrSkipNoPhone   = errors.New("sender's phone number unknown (LID without a mapping)")
	ErrSkipNoContent = errors.New("empty message")
)

// Identity resolves JIDs for the mapping: the phone of a JID (phone-number
// JIDs directly, LIDs through the store) and whether a JID is this account.
type Identity struct {
	Phone  func(types.JID) (string, bool)
	IsSelf func(types.JID) bool
}

// Received is a mapped inbound message; Download is set when media must be
// fetched (and may be inlined: Size within the limit).
type Received struct {
	Message  *protocol.ReceivedMessage
	Download whatsmeow.DownloadableMessage
	Size     int64
}

var vcardWaid = regexp.MustCompile(`waid=([0-9]+)`)
var vcardTel = regexp.MustCompile(`(?m)^TEL[^:]*:\s*\+?([0-9][0-9 ()-]{5,})`)

// MapReceived turns a whatsmeow message event into the protocol's
// ReceivedMessage, without downloading media. Groups, broadcasts, status
// updates and messages from this account's other devices return an error.
func MapReceived(evt *events.Message, id Identity) (*Received, error) {
	info := evt.Info
	if info.IsGroup || info.Chat.Server != types.DefaultUserServer && info.Chat.Server != types.HiddenUserServer {
		return nil, ErrSkipGroup
	}
	if info.IsFromMe {
		return nil, ErrSkipFromMe
	}
	from, ok := phoneOfEither(id, info.Sender, info.SenderAlt)
	if !ok {
		return nil, ErrSkipNoPhone
	}
	chat := from
	if c, ok := phoneOfEither(id, info.Chat, types.EmptyJID); ok {
		chat = c
	}
	m := evt.Message
	if m == nil {
		return nil, ErrSkipNoContent
	}
	out := &protocol.ReceivedMessage{ID: info.ID, From: from, Chat: chat, Timestamp: protocol.Timestamp(info.Timestamp)}
	r := &Received{Message: out}
	var ctx *waE2E.ContextInfo
	mediaOf := func(mimetype, filename string, size uint64, dl whatsmeow.DownloadableMessage) {
		s := int64(size)
		out.Media = &protocol.ReceivedMedia{Mimetype: mimetype, Filename: filename, Size: &s}
		r.Download, r.Size = dl, s
	}
	// target of a reaction, edit or revoke: keys are from the sender's point of view.
	targetOf := func(key interface {
		GetID() string
		GetFromMe() bool
	}) *protocol.MessageRef {
		return &protocol.MessageRef{ID: key.GetID(), Chat: chat, FromMe: !key.GetFromMe()}
	}

	switch {
	case m.Conversation != nil:
		out.Type, out.Text = "text", proto.String(m.GetConversation())
	case m.ExtendedTextMessage != nil:
		out.Type, out.Text = "text", proto.String(m.ExtendedTextMessage.GetText())
		ctx = m.ExtendedTextMessage.GetContextInfo()
	case m.ImageMessage != nil:
		x := m.ImageMessage
		out.Type, out.Caption, ctx = "image", x.Caption, x.GetContextInfo()
		mediaOf(x.GetMimetype(), "", x.GetFileLength(), x)
	case m.VideoMessage != nil:
		x := m.VideoMessage
		out.Type, out.Caption, ctx = "video", x.Caption, x.GetContextInfo()
		mediaOf(x.GetMimetype(), "", x.GetFileLength(), x)
	case m.AudioMessage != nil:
		x := m.AudioMessage
		out.Type, out.PTT, ctx = "audio", proto.Bool(x.GetPTT()), x.GetContextInfo()
		mediaOf(x.GetMimetype(), "", x.GetFileLength(), x)
	case m.DocumentMessage != nil:
		x := m.DocumentMessage
		out.Type, out.Caption, ctx = "document", x.Caption, x.GetContextInfo()
		mediaOf(x.GetMimetype(), x.GetFileName(), x.GetFileLength(), x)
	case m.StickerMessage != nil:
		x := m.StickerMessage
		out.Type, ctx = "sticker", x.GetContextInfo()
		mediaOf(x.GetMimetype(), "", x.GetFileLength(), x)
	case m.LocationMessage != nil:
		x := m.LocationMessage
		out.Type, ctx = "location", x.GetContextInfo()
		out.Location = &protocol.ReceivedLocation{Latitude: x.GetDegreesLatitude(), Longitude: x.GetDegreesLongitude(), Name: x.GetName(), Address: x.GetAddress()}
	case m.ContactMessage != nil:
		x := m.ContactMessage
		out.Type, ctx = "contact", x.GetContextInfo()
		out.Contact = &protocol.ReceivedContact{Name: x.GetDisplayName(), Phone: VCardPhone(x.GetVcard()), Vcard: x.GetVcard()}
	case m.ReactionMessage != nil:
		x := m.ReactionMessage
		out.Type, out.Emoji = "reaction", proto.String(x.GetText())
		out.Target = targetOf(x.GetKey())
	case m.ProtocolMessage != nil:
		x := m.ProtocolMessage
		switch x.GetType() {
		case waE2E.ProtocolMessage_MESSAGE_EDIT:
			out.Type, out.Target = "edit", targetOf(x.GetKey())
			out.Text = proto.String(editedText(x.GetEditedMessage()))
		case waE2E.ProtocolMessage_REVOKE:
			out.Type, out.Target = "revoke", targetOf(x.GetKey())
		default:
			return nil, ErrSkipProtocol
		}
	case m.SenderKeyDistributionMessage != nil && onlySenderKey(m):
		return nil, ErrSkipProtocol
	default:
		out.Type = "unknown"
	}
	if ref := quoted(ctx, chat, id); ref != nil {
		out.ReplyTo = ref
	}
	return r, nil
}

func editedText(m *waE2E.Message) string {
	if m.GetConversation() != "" {
		return m.GetConversation()
	}
	if t := m.GetExtendedTextMessage().GetText(); t != "" {
		return t
	}
	if c := m.GetImageMessage().GetCaption(); c != "" {
		return c
	}
	if c := m.GetVideoMessage().GetCaption(); c != "" {
		return c
	}
	return m.GetDocumentMessage().GetCaption()
}

func onlySenderKey(m *waE2E.Message) bool {
	c := proto.Clone(m).(*waE2E.Message)
	c.SenderKeyDistributionMessage = nil
	c.MessageContextInfo = nil
	return proto.Size(c) == 0
}

// quoted is the message a ContextInfo replies to, if any.
func quoted(ctx *waE2E.ContextInfo, chat string, id Identity) *protocol.MessageRef {
	if ctx.GetStanzaID() == "" {
		return nil
	}
	fromMe := false
	if p := ctx.GetParticipant(); p != "" && id.IsSelf != nil {
		if jid, err := types.ParseJID(p); err == nil {
			fromMe = id.IsSelf(jid)
		}
	}
	return &protocol.MessageRef{ID: ctx.GetStanzaID(), Chat: chat, FromMe: fromMe}
}

func phoneOfEither(id Identity, primary, alt types.JID) (string, bool) {
	for _, j := range []types.JID{primary, alt} {
		if j.IsEmpty() {
			continue
		}
		if p, ok := PhoneOf(j.ToNonAD()); ok {
			return p, true
		}
	}
	if id.Phone != nil {
		for _, j := range []types.JID{primary, alt} {
			if !j.IsEmpty() {
				if p, ok := id.Phone(j.ToNonAD()); ok {
					return p, true
				}
			}
		}
	}
	return "", false
}

// VCardPhone is the first phone number of a vCard (its WhatsApp id if given), digits only.
func VCardPhone(vcard string) string {
	if m := vcardWaid.FindStringSubmatch(vcard); m != nil {
		return m[1]
	}
	if m := vcardTel.FindStringSubmatch(vcard); m != nil {
		digits := make([]byte, 0, len(m[1]))
		for i := 0; i < len(m[1]); i++ {
			if c := m[1][i]; c >= '0' && c <= '9' {
				digits = append(digits, c)
			}
		}
		if protocol.PhonePattern.Match(digits) {
			return string(digits)
		}
	}
	return ""
}
