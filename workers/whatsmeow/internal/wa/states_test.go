package wa

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

func TestMapConnectionEvent(t *testing.T) {
	cases := []struct {
		evt    any
		state  protocol.State
		action Action
		reason string
	}{
		{&events.Connected{}, protocol.StateConnected, ActionNone, "connected"},
		{&events.Disconnected{}, protocol.StateReconnecting, ActionNone, "reconnecting"},
		{&events.KeepAliveTimeout{ErrorCount: 3}, protocol.StateReconnecting, ActionNone, "3 missed"},
		{&events.KeepAliveRestored{}, protocol.StateConnected, ActionNone, "keepalives again"},
		{&events.PairSuccess{ID: types.NewADJID("4915112345678", 0, 5)}, protocol.StatePairing, ActionNone, "+4915112345678"},
		{&events.PairError{Error: errors.New("boom")}, protocol.StateFailed, ActionNone, "boom"},
		{&events.LoggedOut{}, protocol.StateLoggedOut, ActionRelogin, "removed from the phone"},
		{&events.LoggedOut{OnConnect: true, Reason: events.ConnectFailureMainDeviceGone}, protocol.StateLoggedOut, ActionRelogin, "403"},
		{&events.StreamReplaced{}, protocol.StateFailed, ActionGiveUp, "replaced by another client"},
		{&events.TemporaryBan{Code: events.TempBanBlockedByUsers, Expire: 90 * time.Minute}, protocol.StateFailed, ActionRetryLater, "too many people blocked you"},
		{&events.ConnectFailure{Reason: events.ConnectFailureGeneric, Message: "nope"}, protocol.StateFailed, ActionRetryLater, "nope"},
		{&events.ClientOutdated{}, protocol.StateFailed, ActionGiveUp, "outdated"},
	}
	for _, c := range cases {
		tr, ok := MapConnectionEvent(c.evt)
		if !ok {
			t.Errorf("%T not mapped", c.evt)
			continue
		}
		if tr.State != c.state || tr.Action != c.action || !strings.Contains(tr.Reason, c.reason) {
			t.Errorf("%T → %+v, want %s/%d containing %q", c.evt, tr, c.state, c.action, c.reason)
		}
	}
	ban, _ := MapConnectionEvent(&events.TemporaryBan{Code: events.TempBanBlockedByUsers, Expire: 90 * time.Minute})
	if ban.RetryAfter != 90*time.Minute || !strings.Contains(ban.Reason, "1h30m0s") || !strings.Contains(ban.Reason, "102") {
		t.Errorf("ban expiry: %+v", ban)
	}
	for _, evt := range []any{&events.Message{}, &events.Receipt{}, &events.QR{}, "x"} {
		if _, ok := MapConnectionEvent(evt); ok {
			t.Errorf("%T should not be a connection event", evt)
		}
	}
}

func TestNetworkReason(t *testing.T) {
	r := NetworkReason(errors.New("dial tcp 127.0.0.1:9: connect: connection refused"), 1234*time.Millisecond)
	if r != "cannot reach WhatsApp: dial tcp 127.0.0.1:9: connect: connection refused; retrying in 1.2s" {
		t.Errorf("reason: %q", r)
	}
}
