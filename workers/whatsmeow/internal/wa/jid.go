// Package wa is the whatsmeow provider: it logs in (QR or pairing code),
// maps whatsmeow's connection events onto the protocol's session states,
// runs the gateway's commands and turns received messages and receipts
// into events. Message building and event mapping are pure functions
// (build.go, received.go, states.go); provider.go holds the I/O.
package wa

import (
	"fmt"
	"strings"

	"go.mau.fi/whatsmeow/types"

	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

// PhoneJID is the user JID of a phone number (digits only, as the protocol gives it).
func PhoneJID(phone string) (types.JID, error) {
	if !protocol.PhonePattern.MatchString(phone) {
		return types.EmptyJID, fmt.Errorf("not a phone number (digits only, 7 to 15): %q", phone)
	}
	return types.NewJID(phone, types.DefaultUserServer), nil
}

// PhoneOf is the phone of a phone-number JID (its user part, digits only);
// false for LIDs, groups, broadcasts and anything else.
func PhoneOf(jid types.JID) (string, bool) {
	if jid.Server != types.DefaultUserServer || jid.User == "" {
		return "", false
	}
	if strings.Trim(jid.User, "0123456789") != "" {
		return "", false
	}
	return jid.User, true
}
