package wa

import (
	"fmt"
	"time"

	"go.mau.fi/whatsmeow/types/events"

	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

// Action is what the provider does after a connection event besides reporting the state.
type Action int

// Actions after connection events.
const (
	// ActionNone: whatsmeow handles it (it reconnects on its own where it can).
	ActionNone Action = iota
	// ActionRelogin: the session is gone; forget the device and start a new QR login.
	ActionRelogin
	// ActionRetryLater: whatsmeow will not reconnect; connect again after Transition.RetryAfter.
	ActionRetryLater
	// ActionGiveUp: connecting again cannot help until someone acts (another client took the session,
	// the client is outdated); stay failed until the worker is restarted.
	ActionGiveUp
)

// Transition is a connection event mapped onto the protocol's session states.
type Transition struct {
	State      protocol.State
	Reason     string
	Action     Action
	RetryAfter time.Duration
}

// RestoredReason is the reason of the first `connected` of a worker that found
// a linked device in its store: the session resumed without a new link.
const RestoredReason = "session restored"

// ConnectFailureRetry is how long the provider waits after a connect failure whatsmeow does not retry itself.
const ConnectFailureRetry = time.Minute

// MapConnectionEvent maps one whatsmeow event onto a session state with a
// human-readable reason; false for events that are not about the connection.
func MapConnectionEvent(evt any) (Transition, bool) {
	switch e := evt.(type) {
	case *events.Connected:
		return Transition{State: protocol.StateConnected, Reason: "connected to WhatsApp"}, true
	case *events.Disconnected:
		return Transition{State: protocol.StateReconnecting, Reason: "disconnected from WhatsApp; reconnecting"}, true
	case *events.KeepAliveTimeout:
		reason := fmt.Sprintf("WhatsApp stopped answering keepalives (%d missed)", e.ErrorCount)
		if !e.LastSuccess.IsZero() {
			reason += fmt.Sprintf("; last answer at %s", protocol.Timestamp(e.LastSuccess))
		}
		return Transition{State: protocol.StateReconnecting, Reason: reason}, true
	case *events.KeepAliveRestored:
		return Transition{State: protocol.StateConnected, Reason: "WhatsApp answers keepalives again"}, true
	case *events.PairSuccess:
		who := e.ID.User
		if phone, ok := PhoneOf(e.ID.ToNonAD()); ok {
			who = "+" + phone
		}
		return Transition{State: protocol.StatePairing, Reason: fmt.Sprintf("linked to %s; finishing the connection", who)}, true
	case *events.PairError:
		return Transition{State: protocol.StateFailed, Reason: fmt.Sprintf("linking the device failed: %v", e.Error)}, true
	case *events.LoggedOut:
		reason := "logged out: the device was removed from the phone"
		if e.OnConnect {
			reason = fmt.Sprintf("logged out: WhatsApp refused the session (%s)", e.Reason)
		}
		return Transition{State: protocol.StateLoggedOut, Reason: reason, Action: ActionRelogin}, true
	case *events.StreamReplaced:
		return Transition{State: protocol.StateFailed, Reason: "replaced by another client using the same session", Action: ActionGiveUp}, true
	case *events.TemporaryBan:
		retry := e.Expire
		reason := fmt.Sprintf("temporarily banned by WhatsApp (code %s)", e.Code)
		if e.Expire > 0 {
			reason += fmt.Sprintf("; the ban expires in %s", e.Expire.Round(time.Second))
		} else {
			retry = time.Hour
		}
		return Transition{State: protocol.StateFailed, Reason: reason, Action: ActionRetryLater, RetryAfter: retry}, true
	case *events.ConnectFailure:
		reason := fmt.Sprintf("WhatsApp refused the connection (%s)", e.Reason)
		if e.Message != "" {
			reason += ": " + e.Message
		}
		return Transition{State: protocol.StateFailed, Reason: reason, Action: ActionRetryLater, RetryAfter: ConnectFailureRetry}, true
	case *events.ClientOutdated:
		return Transition{State: protocol.StateFailed, Reason: "WhatsApp rejected this client version as outdated; update the whatsmeow worker", Action: ActionGiveUp}, true
	}
	return Transition{}, false
}

// NetworkReason is the reconnecting reason when the WhatsApp socket cannot be reached.
func NetworkReason(err error, retryIn time.Duration) string {
	return fmt.Sprintf("cannot reach WhatsApp: %v; retrying in %s", err, retryIn.Round(100*time.Millisecond))
}
