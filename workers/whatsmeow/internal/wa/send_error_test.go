package wa

import (
	"errors"
	"fmt"
	"testing"

	"go.mau.fi/whatsmeow"

	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

func TestSendErrorCode(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w %d", whatsmeow.ErrServerReturnedError, 429), protocol.CodeRateLimited},
		{fmt.Errorf("%w %d", whatsmeow.ErrServerReturnedError, 463), protocol.CodeRateLimited},
		{fmt.Errorf("%w %d", whatsmeow.ErrServerReturnedError, 479), protocol.CodeSendFailed},
		{fmt.Errorf("sending: %w", &whatsmeow.IQError{Code: 429, Text: "rate-overlimit"}), protocol.CodeRateLimited},
		{&whatsmeow.IQError{Code: 500, Text: "internal-server-error"}, protocol.CodeSendFailed},
		{errors.New("websocket not connected"), protocol.CodeSendFailed},
	}
	for _, c := range cases {
		if got := SendErrorCode(c.err); got != c.want {
			t.Errorf("SendErrorCode(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
