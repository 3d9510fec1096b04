package wa

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/wgs/whatsmeow-worker/internal/backoff"
	"github.com/wgs/whatsmeow-worker/internal/gateway"
	"github.com/wgs/whatsmeow-worker/internal/protocol"
)

// ErrNotConnected is the message of not_connected results (the gateway answers 503 with it).
const notConnectedMessage = "Client not connected"

// Options configure the provider.
type Options struct {
	// DB is the instance schema's pool (search_path set); opened while the instance lock is held.
	DB          *sql.DB
	Reporter    gateway.Reporter
	Log         zerolog.Logger
	WhatsAppURL *url.URL
	// RootPublicKey, when set, replaces WhatsApp's Noise certificate root key
	// (whatsmeow.WACertPubKey) for this process: a local server such as the
	// simulator signs its own chain. Nil keeps WhatsApp's key.
	RootPublicKey *[32]byte
	// MediaAllowPrivate lets media URLs reach private and loopback addresses.
	MediaAllowPrivate bool
}

// Provider is the whatsmeow engine for one WhatsApp number.
type Provider struct {
	opts      Options
	log       zerolog.Logger
	rep       gateway.Reporter
	container *sqlstore.Container
	sent      *SentMessages
	media     *http.Client

	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	signals chan Transition

	mu     sync.Mutex
	client *whatsmeow.Client
	// restoring is true from loading a stored device until its first Connected:
	// that connection resumed a session (reported as "session restored").
	restoring atomic.Bool
}

// Name is the provider name sent in the hello frame.
const Name = "whatsmeow"

// New prepares the provider; Start opens the store and connects.
func New(opts Options) *Provider {
	ctx, cancel := context.WithCancel(context.Background())
	return &Provider{
		opts: opts, log: opts.Log.With().Str("component", "provider").Str("provider", Name).Logger(),
		rep: opts.Reporter, sent: &SentMessages{db: opts.DB}, media: mediaHTTPClient(opts.MediaAllowPrivate),
		ctx: ctx, cancel: cancel, done: make(chan struct{}), signals: make(chan Transition, 8),
	}
}

// Start runs whatsmeow's schema upgrades, loads the device and starts the connection loop.
func (p *Provider) Start(ctx context.Context) error {
	p.container = sqlstore.NewWithDB(p.opts.DB, "postgres", newWALogger(p.opts.Log, "whatsmeow/store"))
	started := time.Now()
	if err := p.container.Upgrade(ctx); err != nil {
		return fmt.Errorf("upgrade the whatsmeow store: %w", err)
	}
	if err := p.sent.Migrate(ctx); err != nil {
		return err
	}
	p.log.Info().Dur("took", time.Since(started)).Msg("state tables ready")
	if key := p.opts.RootPublicKey; key != nil {
		// whatsmeow's exported setting; read by every handshake of this process.
		whatsmeow.WACertPubKey = *key
		p.log.Warn().Hex("rootPublicKey", key[:]).Msg("trusting a non-WhatsApp root key for the server certificate (WHATSMEOW_ROOT_PUBLIC_KEY): only for a local test server")
	}
	if err := p.newClient(ctx); err != nil {
		return err
	}
	go p.loop()
	return nil
}

// Stop ends the loop and the WhatsApp socket, waiting at most `wait`.
func (p *Provider) Stop(wait time.Duration) {
	p.cancel()
	if cli := p.current(); cli != nil {
		cli.Disconnect()
	}
	select {
	case <-p.done:
	case <-time.After(wait):
		p.log.Warn().Dur("after", wait).Msg("the WhatsApp loop did not stop in time")
	}
}

func (p *Provider) current() *whatsmeow.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client
}

// newClient makes a client for the stored device (or a new one when none is stored).
func (p *Provider) newClient(ctx context.Context) error {
	device, err := p.container.GetFirstDevice(ctx)
	if err != nil {
		return fmt.Errorf("load the whatsmeow device: %w", err)
	}
	cli := whatsmeow.NewClient(device, newWALogger(p.opts.Log, "whatsmeow"))
	if hc := socketHTTPClient(p.opts.WhatsAppURL); hc != nil {
		cli.SetPreLoginHTTPClient(hc)
		cli.SetWebsocketHTTPClient(hc)
	}
	cli.AutoReconnectHook = func(err error) bool {
		if p.current() == cli && p.ctx.Err() == nil {
			delay := time.Duration(cli.AutoReconnectErrors) * 2 * time.Second
			p.rep.SetState(protocol.StateReconnecting, NetworkReason(err, delay))
		}
		return p.ctx.Err() == nil
	}
	cli.AddEventHandler(func(evt any) { p.onEvent(cli, evt) })
	p.mu.Lock()
	p.client = cli
	p.mu.Unlock()
	p.restoring.Store(device.ID != nil)
	if device.ID != nil {
		p.log.Info().Str("jid", device.ID.String()).Msg("session restored from the store")
	} else {
		p.log.Info().Msg("no session stored; a QR login starts")
	}
	return nil
}

func (p *Provider) signal(t Transition) {
	select {
	case p.signals <- t:
	default:
		p.log.Warn().Str("state", string(t.State)).Msg("signal queue full; dropping a connection signal")
	}
}

// wait sleeps for d (forever when d < 0); it returns early with a signal, or false when stopping.
func (p *Provider) wait(d time.Duration) (*Transition, bool) {
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-p.ctx.Done():
		return nil, false
	case s := <-p.signals:
		return &s, true
	case <-timer:
		return nil, true
	}
}

// loop keeps the session connected: QR login while no device is linked,
// otherwise connect (whatsmeow reconnects on its own after that) and react
// to the events that need more than a state report.
func (p *Provider) loop() {
	defer close(p.done)
	attempt := 0
	for p.ctx.Err() == nil {
		cli := p.current()
		if cli.Store.ID == nil {
			p.qrLogin(cli)
			continue
		}
		if !cli.IsConnected() {
			p.rep.SetState(protocol.StateStarting, "connecting to WhatsApp")
			if err := cli.ConnectContext(p.ctx); err != nil && !errors.Is(err, whatsmeow.ErrAlreadyConnected) {
				if p.ctx.Err() != nil {
					return
				}
				delay := backoff.WhatsApp.Delay(attempt, nil)
				attempt++
				p.log.Warn().Err(err).Dur("retryIn", delay).Msg("cannot connect to WhatsApp")
				p.rep.SetState(protocol.StateReconnecting, NetworkReason(err, delay))
				if s, ok := p.wait(delay); !ok {
					return
				} else if s != nil {
					p.apply(cli, *s)
				}
				continue
			}
			attempt = 0
		}
		s, ok := p.wait(-1)
		if !ok {
			return
		}
		if s != nil {
			p.apply(cli, *s)
		}
	}
}

// apply acts on a connection event whatsmeow does not handle itself.
func (p *Provider) apply(cli *whatsmeow.Client, s Transition) {
	switch s.Action {
	case ActionRelogin:
		cli.Disconnect()
		if cli.Store.ID != nil {
			if err := cli.Store.Delete(p.ctx); err != nil {
				p.log.Error().Err(err).Msg("deleting the logged-out device failed")
			}
		}
		if err := p.newClient(p.ctx); err != nil {
			p.log.Error().Err(err).Msg("cannot prepare a new login")
			p.rep.SetState(protocol.StateFailed, fmt.Sprintf("cannot prepare a new login: %v", err))
			p.wait(time.Minute)
		}
	case ActionRetryLater:
		cli.Disconnect()
		p.log.Warn().Dur("retryIn", s.RetryAfter).Str("reason", s.Reason).Msg("WhatsApp refused the session; trying again later")
		if next, ok := p.wait(s.RetryAfter); ok && next != nil && next.Action == ActionRelogin {
			p.apply(cli, *next)
		}
	case ActionGiveUp:
		cli.Disconnect()
		p.log.Error().Str("reason", s.Reason).Msg("not reconnecting to WhatsApp until the worker restarts or the session is logged out")
		for {
			next, ok := p.wait(-1)
			if !ok {
				return
			}
			if next != nil && next.Action == ActionRelogin {
				p.apply(cli, *next)
				return
			}
		}
	}
}

// qrLogin runs one QR channel: connect (retrying with backoff while
// WhatsApp cannot be reached), forward each code, and return when the
// channel ends (linked, expired, failed) or a signal or stop comes.
func (p *Provider) qrLogin(cli *whatsmeow.Client) {
	if cli.IsConnected() {
		cli.Disconnect()
	}
	qrCtx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	ch, err := cli.GetQRChannel(qrCtx)
	if err != nil {
		p.log.Error().Err(err).Msg("cannot start a QR login")
		p.rep.SetState(protocol.StateFailed, fmt.Sprintf("cannot start a QR login: %v", err))
		p.wait(10 * time.Second)
		return
	}
	p.rep.SetState(protocol.StateStarting, "connecting to WhatsApp for a QR login")
	for attempt := 0; ; attempt++ {
		err := cli.ConnectContext(p.ctx)
		if err == nil {
			break
		}
		if p.ctx.Err() != nil {
			return
		}
		delay := backoff.WhatsApp.Delay(attempt, nil)
		p.log.Warn().Err(err).Dur("retryIn", delay).Msg("cannot connect to WhatsApp")
		p.rep.SetState(protocol.StateReconnecting, NetworkReason(err, delay))
		// The channel stays unused while the connect fails: the next attempt reuses it.
		s, ok := p.wait(delay)
		if !ok {
			return
		}
		if s != nil {
			p.apply(cli, *s)
			return
		}
	}
	for {
		select {
		case <-p.ctx.Done():
			return
		case s := <-p.signals:
			cli.Disconnect()
			p.apply(cli, s)
			return
		case item, open := <-ch:
			if !open {
				return
			}
			if done := p.onQRItem(cli, item); done {
				return
			}
		}
	}
}

// onQRItem reports one QR channel item; true when the login attempt is over.
func (p *Provider) onQRItem(cli *whatsmeow.Client, item whatsmeow.QRChannelItem) bool {
	switch item.Event {
	case whatsmeow.QRChannelEventCode:
		p.rep.SetState(protocol.StateQR, "waiting for QR scan")
		p.rep.SetQR(item.Code, time.Now().Add(item.Timeout))
		return false
	case whatsmeow.QRChannelScannedWithoutMultidevice.Event:
		p.rep.SetState(protocol.StateQR, "the QR code was scanned by a phone without multi-device support; scan it again")
		return false
	case whatsmeow.QRChannelSuccess.Event:
		p.rep.SetState(protocol.StatePairing, "QR code scanned; finishing the link")
		// whatsmeow reconnects with the new session by itself (stream error 515).
		if !cli.WaitForConnection(30 * time.Second) {
			p.log.Warn().Msg("no connection within 30 s of linking; connecting again")
		}
		return true
	case whatsmeow.QRChannelTimeout.Event:
		cli.Disconnect()
		p.rep.SetState(protocol.StateStarting, "QR code expired without a scan; requesting a new one")
		return true
	case whatsmeow.QRChannelClientOutdated.Event:
		cli.Disconnect()
		t, _ := MapConnectionEvent(&events.ClientOutdated{})
		p.rep.SetState(t.State, t.Reason)
		p.apply(cli, t)
		return true
	case whatsmeow.QRChannelEventError:
		cli.Disconnect()
		p.rep.SetState(protocol.StateFailed, fmt.Sprintf("linking the device failed: %v; requesting a new QR code", item.Error))
		p.wait(2 * time.Second)
		return true
	default: // err-unexpected-state: the event handler reported the event itself
		p.log.Warn().Str("event", item.Event).Msg("QR login ended by an unexpected connection event")
		return true
	}
}

// ------------------------------------------------------------ events

func (p *Provider) onEvent(cli *whatsmeow.Client, evt any) {
	if p.current() != cli || p.ctx.Err() != nil {
		return // a replaced client, or stopping
	}
	if t, ok := MapConnectionEvent(evt); ok {
		// A QR login reports its own progress; a Disconnected while linking just ends the channel.
		if _, isDisc := evt.(*events.Disconnected); isDisc && cli.Store.ID == nil {
			return
		}
		// The first connection with a stored device resumed the session: no QR, no new link.
		if _, isConn := evt.(*events.Connected); isConn && p.restoring.Swap(false) {
			t.Reason = RestoredReason
		}
		p.rep.SetState(t.State, t.Reason)
		if t.Action != ActionNone {
			p.signal(t)
		}
		return
	}
	switch e := evt.(type) {
	case *events.Message:
		p.onMessage(cli, e)
	case *events.Receipt:
		p.onReceipt(e)
	}
}

func (p *Provider) identity(cli *whatsmeow.Client) Identity {
	return Identity{
		Phone: func(j types.JID) (string, bool) {
			if j.Server != types.HiddenUserServer {
				return "", false
			}
			ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
			defer cancel()
			pn, err := cli.Store.LIDs.GetPNForLID(ctx, j)
			if err != nil || pn.IsEmpty() {
				return "", false
			}
			return PhoneOf(pn.ToNonAD())
		},
		IsSelf: func(j types.JID) bool {
			if id := cli.Store.ID; id != nil && j.User == id.User {
				return true
			}
			lid := cli.Store.LID
			return !lid.IsEmpty() && j.User == lid.User
		},
	}
}

func (p *Provider) onMessage(cli *whatsmeow.Client, evt *events.Message) {
	r, err := MapReceived(evt, p.identity(cli))
	if err != nil {
		p.log.Debug().Str("id", evt.Info.ID).Str("chat", evt.Info.Chat.String()).Str("skip", err.Error()).Msg("received message not reported")
		return
	}
	if r.Download != nil && r.Size <= protocol.MaxInlineMediaBytes {
		ctx, cancel := context.WithTimeout(p.ctx, MediaDownloadTimeout)
		data, err := cli.Download(ctx, r.Download)
		cancel()
		switch {
		case err != nil:
			p.log.Warn().Err(err).Str("id", r.Message.ID).Msg("downloading received media failed; reporting its size only")
		case len(data) <= protocol.MaxInlineMediaBytes:
			r.Message.Media.Data = base64.StdEncoding.EncodeToString(data)
			size := int64(len(data))
			r.Message.Media.Size = &size
		}
	}
	p.rep.Emit(protocol.ReceivedEvent(r.Message))
}

// receiptStatus maps a receipt type onto message.status; false for receipts that are not about delivery to the recipient.
func receiptStatus(t types.ReceiptType) (string, bool) {
	switch t {
	case types.ReceiptTypeDelivered:
		return protocol.StatusDelivered, true
	case types.ReceiptTypeRead, types.ReceiptTypePlayed:
		return protocol.StatusRead, true
	}
	return "", false
}

func (p *Provider) onReceipt(evt *events.Receipt) {
	status, ok := receiptStatus(evt.Type)
	if !ok || evt.IsFromMe || evt.IsGroup {
		return
	}
	for _, id := range evt.MessageIDs {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		messageID, err := p.sent.MessageID(ctx, id)
		cancel()
		if err != nil {
			p.log.Warn().Err(err).Msg("cannot map a receipt")
			continue
		}
		if messageID == "" {
			continue // not sent through the gateway
		}
		p.rep.Emit(protocol.StatusEvent(messageID, status, evt.Timestamp))
	}
}

// ------------------------------------------------------------ commands

// Execute runs one gateway command.
func (p *Provider) Execute(ctx context.Context, name string, args json.RawMessage) (map[string]any, error) {
	switch name {
	case protocol.CommandSend:
		return p.send(ctx, args)
	case protocol.CommandRead:
		return p.read(ctx, args)
	case protocol.CommandPairCode:
		return p.pairCode(ctx, args)
	case protocol.CommandPresence:
		return p.presence(ctx, args)
	case protocol.CommandLogout:
		return p.logout(ctx, args)
	}
	return nil, protocol.Errorf(protocol.CodeUnsupportedCommand, "the whatsmeow provider does not support %q", name)
}

func argsError(name string, err error) error {
	var ut *protocol.UnsupportedTypeError
	if errors.As(err, &ut) {
		return protocol.Errorf(protocol.CodeUnsupportedCommand, "the whatsmeow provider does not support %s messages of type %q", name, ut.Type)
	}
	return &protocol.CommandError{Code: protocol.CodeInvalidArgs, Message: fmt.Sprintf("invalid arguments for %s: %v", name, err), Err: err}
}

func (p *Provider) connectedClient() (*whatsmeow.Client, error) {
	cli := p.current()
	if cli == nil || !cli.IsConnected() || !cli.IsLoggedIn() || cli.Store.ID == nil {
		return nil, protocol.Errorf(protocol.CodeNotConnected, notConnectedMessage)
	}
	return cli, nil
}

func (p *Provider) send(ctx context.Context, raw json.RawMessage) (map[string]any, error) {
	a, err := protocol.ParseSend(raw)
	if err != nil {
		return nil, argsError("send", err)
	}
	cli, err := p.connectedClient()
	if err != nil {
		return nil, err
	}
	to, err := PhoneJID(a.To)
	if err != nil {
		return nil, argsError("send", err)
	}
	var up *Uploaded
	if kind, isMedia := MediaType(a.Type); isMedia {
		data, err := LoadMedia(ctx, a.Media, p.media)
		if err != nil {
			return nil, err
		}
		resp, err := cli.Upload(ctx, data, kind)
		if err != nil {
			return nil, &protocol.CommandError{Code: protocol.CodeMediaFailed, Message: fmt.Sprintf("uploading the media to WhatsApp failed: %v", err), Err: err}
		}
		up = &Uploaded{UploadResponse: resp, Mimetype: a.Media.Mimetype, Filename: a.Media.Filename}
	}
	msg, err := BuildMessage(a, *cli.Store.ID, up, time.Now())
	if err != nil {
		return nil, argsError("send", err)
	}
	id, err := p.sent.ProviderID(ctx, a.MessageID)
	if err != nil {
		return nil, &protocol.CommandError{Code: protocol.CodeSendFailed, Message: "the state store is unavailable", Err: err}
	}
	if id == "" {
		id = cli.GenerateMessageID()
		// Recorded before sending, so an early receipt finds it.
		if err := p.sent.Put(ctx, id, a.MessageID, a.To); err != nil {
			return nil, &protocol.CommandError{Code: protocol.CodeSendFailed, Message: "the state store is unavailable", Err: err}
		}
	}
	resp, err := cli.SendMessage(ctx, to, msg, whatsmeow.SendRequestExtra{ID: id})
	if err != nil {
		return nil, &protocol.CommandError{Code: SendErrorCode(err), Message: fmt.Sprintf("sending the message failed: %v", err), Err: err}
	}
	at := resp.Timestamp
	if at.IsZero() {
		at = time.Now()
	}
	p.rep.Emit(protocol.StatusEvent(a.MessageID, protocol.StatusSent, at))
	return map[string]any{"messageId": a.MessageID, "providerMessageId": resp.ID, "status": protocol.StatusSent}, nil
}

func (p *Provider) read(ctx context.Context, raw json.RawMessage) (map[string]any, error) {
	a, err := protocol.ParseRead(raw)
	if err != nil {
		return nil, argsError("read", err)
	}
	cli, err := p.connectedClient()
	if err != nil {
		return nil, err
	}
	chat, err := PhoneJID(a.Chat)
	if err != nil {
		return nil, argsError("read", err)
	}
	ids := make([]types.MessageID, len(a.MessageIDs))
	copy(ids, a.MessageIDs)
	if err := cli.MarkRead(ctx, ids, time.Now(), chat, chat); err != nil {
		return nil, &protocol.CommandError{Code: protocol.CodeSendFailed, Message: fmt.Sprintf("marking the messages read failed: %v", err), Err: err}
	}
	return map[string]any{}, nil
}

// presence shows or stops the typing indicator in one chat.
func (p *Provider) presence(ctx context.Context, raw json.RawMessage) (map[string]any, error) {
	a, err := protocol.ParsePresence(raw)
	if err != nil {
		return nil, argsError("presence", err)
	}
	cli, err := p.connectedClient()
	if err != nil {
		return nil, err
	}
	chat, err := PhoneJID(a.Chat)
	if err != nil {
		return nil, argsError("presence", err)
	}
	if err := cli.SendChatPresence(ctx, chat, types.ChatPresence(a.State), types.ChatPresenceMediaText); err != nil {
		return nil, &protocol.CommandError{Code: protocol.CodeSendFailed, Message: fmt.Sprintf("sending the presence failed: %v", err), Err: err}
	}
	return map[string]any{}, nil
}

// SendErrorCode classifies a failed send: WhatsApp's rate limit (429) and
// its temporary block on new chats (463) are rate_limited, which pauses the
// number in the gateway; anything else is send_failed.
func SendErrorCode(err error) string {
	var iq *whatsmeow.IQError
	if errors.As(err, &iq) && iq.Code == 429 {
		return protocol.CodeRateLimited
	}
	if errors.Is(err, whatsmeow.ErrServerReturnedError) {
		msg := err.Error()
		if strings.HasSuffix(msg, " 429") || strings.HasSuffix(msg, " 463") {
			return protocol.CodeRateLimited
		}
	}
	return protocol.CodeSendFailed
}

func (p *Provider) pairCode(ctx context.Context, raw json.RawMessage) (map[string]any, error) {
	a, err := protocol.ParsePairCode(raw)
	if err != nil {
		return nil, argsError("pair-code", err)
	}
	cli := p.current()
	if cli.Store.ID != nil {
		return nil, protocol.Errorf(protocol.CodeAlreadyConnected, "this instance is already linked to WhatsApp; log out first")
	}
	if !cli.IsConnected() {
		return nil, protocol.Errorf(protocol.CodeNotConnected, notConnectedMessage)
	}
	code, err := cli.PairPhone(ctx, a.Phone, true, whatsmeow.PairClientChrome, "Chrome (Linux)")
	if err != nil {
		return nil, &protocol.CommandError{Code: protocol.CodeNotReady, Message: fmt.Sprintf("requesting a pairing code failed: %v", err), Err: err}
	}
	p.rep.SetState(protocol.StatePairing, "waiting for the pairing code to be entered on the phone")
	return map[string]any{"code": strings.ReplaceAll(code, "-", "")}, nil
}

func (p *Provider) logout(ctx context.Context, raw json.RawMessage) (map[string]any, error) {
	if err := protocol.ParseEmpty(raw); err != nil {
		return nil, argsError("logout", err)
	}
	cli := p.current()
	if cli.Store.ID != nil {
		if cli.IsConnected() && cli.IsLoggedIn() {
			if err := cli.Logout(ctx); err != nil {
				p.log.Warn().Err(err).Msg("logout request failed; forgetting the session locally")
			}
		}
		cli.Disconnect()
		if cli.Store.ID != nil {
			if err := cli.Store.Delete(ctx); err != nil {
				return nil, &protocol.CommandError{Code: protocol.CodeInternal, Message: fmt.Sprintf("deleting the session failed: %v", err), Err: err}
			}
		}
	}
	p.rep.SetState(protocol.StateLoggedOut, "logged out via API")
	p.signal(Transition{State: protocol.StateLoggedOut, Action: ActionRelogin})
	return map[string]any{"state": string(protocol.StateLoggedOut)}, nil
}
