package wa

import (
	"fmt"
	"strings"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"

	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

// Uploaded is media already uploaded to WhatsApp (whatsmeow's UploadResponse)
// with what the message needs to describe it.
type Uploaded struct {
	whatsmeow.UploadResponse
	Mimetype string
	Filename string
}

// MediaType is the whatsmeow upload kind for a send type (stickers are images).
func MediaType(sendType string) (whatsmeow.MediaType, bool) {
	switch sendType {
	case "image", "sticker":
		return whatsmeow.MediaImage, true
	case "video":
		return whatsmeow.MediaVideo, true
	case "audio":
		return whatsmeow.MediaAudio, true
	case "document":
		return whatsmeow.MediaDocument, true
	}
	return "", false
}

// BuildMessage turns `send` arguments into the message proto. self is this
// instance's own JID (the sender of messages it sent, for quotes); media is
// the upload for media types; now stamps edits, reactions and media keys.
func BuildMessage(a *protocol.SendArgs, self types.JID, media *Uploaded, now time.Time) (*waE2E.Message, error) {
	ctxInfo, err := quoteContext(a.ReplyTo, self)
	if err != nil {
		return nil, err
	}
	if _, isMedia := MediaType(a.Type); isMedia && media == nil {
		return nil, fmt.Errorf("%s message without uploaded media", a.Type)
	}
	switch a.Type {
	case "text":
		if ctxInfo == nil {
			return &waE2E.Message{Conversation: proto.String(a.Text)}, nil
		}
		return &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String(a.Text), ContextInfo: ctxInfo}}, nil
	case "image":
		return &waE2E.Message{ImageMessage: &waE2E.ImageMessage{
			URL: proto.String(media.URL), DirectPath: proto.String(media.DirectPath), MediaKey: media.MediaKey,
			Mimetype: proto.String(media.Mimetype), FileEncSHA256: media.FileEncSHA256, FileSHA256: media.FileSHA256,
			FileLength: proto.Uint64(media.FileLength), MediaKeyTimestamp: proto.Int64(now.Unix()),
			Caption: optional(a.Caption), ContextInfo: ctxInfo,
		}}, nil
	case "video":
		return &waE2E.Message{VideoMessage: &waE2E.VideoMessage{
			URL: proto.String(media.URL), DirectPath: proto.String(media.DirectPath), MediaKey: media.MediaKey,
			Mimetype: proto.String(media.Mimetype), FileEncSHA256: media.FileEncSHA256, FileSHA256: media.FileSHA256,
			FileLength: proto.Uint64(media.FileLength), MediaKeyTimestamp: proto.Int64(now.Unix()),
			Caption: optional(a.Caption), ContextInfo: ctxInfo,
		}}, nil
	case "audio":
		return &waE2E.Message{AudioMessage: &waE2E.AudioMessage{
			URL: proto.String(media.URL), DirectPath: proto.String(media.DirectPath), MediaKey: media.MediaKey,
			Mimetype: proto.String(media.Mimetype), FileEncSHA256: media.FileEncSHA256, FileSHA256: media.FileSHA256,
			FileLength: proto.Uint64(media.FileLength), MediaKeyTimestamp: proto.Int64(now.Unix()),
			PTT: proto.Bool(a.PTT), ContextInfo: ctxInfo,
		}}, nil
	case "document":
		name := media.Filename
		if name == "" {
			name = "document"
		}
		return &waE2E.Message{DocumentMessage: &waE2E.DocumentMessage{
			URL: proto.String(media.URL), DirectPath: proto.String(media.DirectPath), MediaKey: media.MediaKey,
			Mimetype: proto.String(media.Mimetype), FileEncSHA256: media.FileEncSHA256, FileSHA256: media.FileSHA256,
			FileLength: proto.Uint64(media.FileLength), MediaKeyTimestamp: proto.Int64(now.Unix()),
			FileName: proto.String(name), Title: proto.String(name), Caption: optional(a.Caption), ContextInfo: ctxInfo,
		}}, nil
	case "sticker":
		return &waE2E.Message{StickerMessage: &waE2E.StickerMessage{
			URL: proto.String(media.URL), DirectPath: proto.String(media.DirectPath), MediaKey: media.MediaKey,
			Mimetype: proto.String(media.Mimetype), FileEncSHA256: media.FileEncSHA256, FileSHA256: media.FileSHA256,
			FileLength: proto.Uint64(media.FileLength), MediaKeyTimestamp: proto.Int64(now.Unix()), ContextInfo: ctxInfo,
		}}, nil
	case "location":
		l := a.Location
		return &waE2E.Message{LocationMessage: &waE2E.LocationMessage{
			DegreesLatitude: proto.Float64(l.Latitude), DegreesLongitude: proto.Float64(l.Longitude),
			Name: optional(l.Name), Address: optional(l.Address), ContextInfo: ctxInfo,
		}}, nil
	case "contact":
		return &waE2E.Message{ContactMessage: &waE2E.ContactMessage{
			DisplayName: proto.String(a.Contact.Name), Vcard: proto.String(VCard(a.Contact.Name, a.Contact.Phone)), ContextInfo: ctxInfo,
		}}, nil
	case "reaction":
		key, err := messageKey(a.Target)
		if err != nil {
			return nil, err
		}
		return &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{
			Key: key, Text: proto.String(a.Emoji), SenderTimestampMS: proto.Int64(now.UnixMilli()),
		}}, nil
	case "edit":
		if !a.Target.FromMe {
			return nil, fmt.Errorf("only messages this instance sent can be edited")
		}
		key, err := messageKey(a.Target)
		if err != nil {
			return nil, err
		}
		return &waE2E.Message{EditedMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{
			ProtocolMessage: &waE2E.ProtocolMessage{
				Type: waE2E.ProtocolMessage_MESSAGE_EDIT.Enum(), Key: key,
				EditedMessage: &waE2E.Message{Conversation: proto.String(a.Text)},
				TimestampMS:   proto.Int64(now.UnixMilli()),
			},
		}}}, nil
	case "revoke":
		if !a.Target.FromMe {
			return nil, fmt.Errorf("only messages this instance sent can be revoked")
		}
		key, err := messageKey(a.Target)
		if err != nil {
			return nil, err
		}
		return &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_REVOKE.Enum(), Key: key}}, nil
	}
	return nil, &protocol.UnsupportedTypeError{Type: a.Type}
}

// messageKey points at a message in a one-to-one chat.
func messageKey(ref *protocol.MessageRef) (*waCommon.MessageKey, error) {
	chat, err := PhoneJID(ref.Chat)
	if err != nil {
		return nil, err
	}
	return &waCommon.MessageKey{RemoteJID: proto.String(chat.String()), FromMe: proto.Bool(ref.FromMe), ID: proto.String(ref.ID)}, nil
}

// quoteContext quotes replyTo: its id, and its sender (this instance or the other party).
func quoteContext(ref *protocol.MessageRef, self types.JID) (*waE2E.ContextInfo, error) {
	if ref == nil {
		return nil, nil
	}
	chat, err := PhoneJID(ref.Chat)
	if err != nil {
		return nil, err
	}
	sender := chat
	if ref.FromMe {
		sender = self.ToNonAD()
	}
	return &waE2E.ContextInfo{
		StanzaID:    proto.String(ref.ID),
		Participant: proto.String(sender.String()),
		// The quoted content is not known here; WhatsApp clients show it from their own copy.
		QuotedMessage: &waE2E.Message{Conversation: proto.String("")},
	}, nil
}

// VCard is a minimal vCard 3.0 for a contact with one phone number.
func VCard(name, phone string) string {
	escaped := strings.NewReplacer(`\`, `\\`, ",", `\,`, ";", `\;`, "\n", `\n`).Replace(name)
	return "BEGIN:VCARD\nVERSION:3.0\n" +
		"N:;" + escaped + ";;;\n" +
		"FN:" + escaped + "\n" +
		"TEL;type=CELL;type=VOICE;waid=" + phone + ":+" + phone + "\n" +
		"END:VCARD"
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return proto.String(s)
}
