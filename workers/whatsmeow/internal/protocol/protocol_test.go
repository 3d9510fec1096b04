package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseSendValid(t *testing.T) {
	a, err := ParseSend(json.RawMessage(`{"messageId":"m-1","to":"15550002222","type":"audio","ptt":true,
		"media":{"url":"https://example.com/a.ogg","mimetype":"audio/ogg; codecs=opus","filename":"a.ogg"},
		"replyTo":{"id":"X","chat":"15550002222","fromMe":true},"extra":"ignored"}`))
	if err != nil {
		t.Fatal(err)
	}
	if a.Type != "audio" || !a.PTT || a.Media.URL != "https://example.com/a.ogg" || a.Media.Filename != "a.ogg" || a.ReplyTo == nil || !a.ReplyTo.FromMe {
		t.Errorf("parsed %+v", a)
	}
}

func TestParseSendProblemsNameTheField(t *testing.T) {
	big := strings.Repeat("A", (MaxInlineMediaBytes/3+2)*4)
	cases := map[string]string{
		`[]`:                                   "args",
		`{"messageId":"m","to":"15550002222"}`: "/type",
		`{"messageId":"m","to":"+15550002222","type":"text","text":"x"}`:                                                         "/to",
		`{"to":"15550002222","type":"text","text":"x"}`:                                                                          "/messageId",
		`{"messageId":"m","to":"15550002222","type":"text","text":""}`:                                                           "/text",
		`{"messageId":"m","to":"15550002222","type":"text","text":5}`:                                                            "/text",
		`{"messageId":"m","to":"15550002222","type":"image"}`:                                                                    "/media",
		`{"messageId":"m","to":"15550002222","type":"image","media":{"mimetype":"image/png"}}`:                                   "/media",
		`{"messageId":"m","to":"15550002222","type":"image","media":{"url":"http://x/y","mimetype":"image/png"}}`:                "/media/url",
		`{"messageId":"m","to":"15550002222","type":"image","media":{"data":"aGk=","mimetype":"png"}}`:                           "/media/mimetype",
		`{"messageId":"m","to":"15550002222","type":"image","media":{"data":"aGk=","url":"https://x/y","mimetype":"image/png"}}`: "/media",
		`{"messageId":"m","to":"15550002222","type":"image","media":{"data":"` + big + `","mimetype":"image/png"}}`:              "/media/data",
		`{"messageId":"m","to":"15550002222","type":"audio","ptt":"yes","media":{"data":"aGk=","mimetype":"audio/ogg"}}`:         "/ptt",
		`{"messageId":"m","to":"15550002222","type":"location","location":{"latitude":91,"longitude":0}}`:                        "/location/latitude",
		`{"messageId":"m","to":"15550002222","type":"location","location":{"latitude":1}}`:                                       "/location/longitude",
		`{"messageId":"m","to":"15550002222","type":"contact","contact":{"name":"A","phone":"12"}}`:                              "/contact/phone",
		`{"messageId":"m","to":"15550002222","type":"reaction","target":{"id":"x","chat":"15550002222","fromMe":true}}`:          "/emoji",
		`{"messageId":"m","to":"15550002222","type":"reaction","emoji":"x","target":{"id":"x","chat":"15550002222"}}`:            "/target/fromMe",
		`{"messageId":"m","to":"15550002222","type":"edit","text":"x"}`:                                                          "/target",
		`{"messageId":"m","to":"15550002222","type":"revoke","target":{"id":"","chat":"15550002222","fromMe":true}}`:             "/target/id",
		`{"messageId":"m","to":"15550002222","type":"text","text":"x","replyTo":{"id":"x","chat":"abc","fromMe":true}}`:          "/replyTo/chat",
	}
	for args, path := range cases {
		_, err := ParseSend(json.RawMessage(args))
		var ae *ArgsError
		if !errors.As(err, &ae) {
			t.Errorf("%.80s: want an ArgsError, got %v", args, err)
			continue
		}
		if ae.Path != path {
			t.Errorf("%.80s: problem at %s (%s), want %s", args, ae.Path, ae.Problem, path)
		}
	}
}

func TestParseSendUnknownType(t *testing.T) {
	_, err := ParseSend(json.RawMessage(`{"messageId":"m","to":"15550002222","type":"poll"}`))
	var ut *UnsupportedTypeError
	if !errors.As(err, &ut) || ut.Type != "poll" {
		t.Errorf("got %v", err)
	}
}

func TestParseReadAndPairCode(t *testing.T) {
	r, err := ParseRead(json.RawMessage(`{"chat":"15550002222","messageIds":["a","b"]}`))
	if err != nil || len(r.MessageIDs) != 2 {
		t.Errorf("read: %+v %v", r, err)
	}
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = `"x"`
	}
	for args, path := range map[string]string{
		`{"chat":"15550002222"}`:                                               "/messageIds",
		`{"chat":"15550002222","messageIds":[]}`:                               "/messageIds",
		`{"chat":"15550002222","messageIds":[` + strings.Join(ids, ",") + `]}`: "/messageIds",
		`{"chat":"15550002222","messageIds":["a",""]}`:                         "/messageIds/1",
		`{"chat":"x","messageIds":["a"]}`:                                      "/chat",
	} {
		_, err := ParseRead(json.RawMessage(args))
		var ae *ArgsError
		if !errors.As(err, &ae) || ae.Path != path {
			t.Errorf("read %.60s: %v, want %s", args, err, path)
		}
	}
	if p, err := ParsePairCode(json.RawMessage(`{"phone":"4915112345678"}`)); err != nil || p.Phone != "4915112345678" {
		t.Errorf("pair-code: %v %v", p, err)
	}
	if _, err := ParsePairCode(json.RawMessage(`{"phone":"0151"}`)); err == nil || !strings.Contains(err.Error(), "/phone") {
		t.Errorf("pair-code bad phone: %v", err)
	}
	if err := ParseEmpty(json.RawMessage(`{}`)); err != nil {
		t.Errorf("logout: %v", err)
	}
}

func TestParseGatewayFrame(t *testing.T) {
	f, err := ParseGatewayFrame([]byte(`{"type":"welcome","protocol":1,"instanceId":3,"phone":"15550001111"}`))
	if err != nil || f.Welcome == nil || f.Welcome.InstanceID != 3 || f.Welcome.Phone != "15550001111" {
		t.Errorf("welcome: %+v %v", f, err)
	}
	f, err = ParseGatewayFrame([]byte(`{"type":"command","commandId":9,"name":"send","args":{"a":1}}`))
	if err != nil || f.Command == nil || f.Command.CommandID != 9 || f.Command.Name != "send" || string(f.Command.Args) != `{"a":1}` {
		t.Errorf("command: %+v %v", f, err)
	}
	f, err = ParseGatewayFrame([]byte(`{"type":"ack","eventId":"e-1"}`))
	if err != nil || f.Ack == nil || *f.Ack != "e-1" {
		t.Errorf("ack: %+v %v", f, err)
	}
	f, err = ParseGatewayFrame([]byte(`{"type":"ping","t":123.5}`))
	if err != nil || f.Ping == nil || *f.Ping != 123.5 {
		t.Errorf("ping: %+v %v", f, err)
	}
	for _, bad := range []string{
		`nope`, `{"type":"hello"}`, `{"type":"welcome","protocol":1}`, `{"type":"command","commandId":1.5,"name":"send","args":{}}`,
		`{"type":"command","commandId":1,"name":"send","args":[]}`, `{"type":"command","commandId":1,"args":{}}`, `{"type":"ack"}`, `{"type":"pong"}`,
	} {
		if _, err := ParseGatewayFrame([]byte(bad)); err == nil {
			t.Errorf("%s should not parse", bad)
		}
	}
}

func TestFramesOnTheWire(t *testing.T) {
	cases := map[string]any{
		`{"type":"result","commandId":1,"ok":true,"data":{}}`:                                                          Success(1, nil),
		`{"type":"result","commandId":2,"ok":false,"error":{"code":"not_connected","message":"Client not connected"}}`: Failure(2, CodeNotConnected, "Client not connected"),
		`{"type":"state","state":"starting"}`:                                                                          StateFrame{Type: "state", State: StateStarting},
		`{"type":"ping","t":5,"usage":{"rssBytes":41943040,"cpuSeconds":1.25}}`:                                        PingFrame{Type: "ping", T: 5, Usage: &Usage{RSSBytes: 40 << 20, CPUSeconds: 1.25}},
		`{"type":"pong","t":5}`: PingFrame{Type: "pong", T: 5},
		`{"type":"message.status","data":{"messageId":"m","status":"sent","timestamp":"2026-01-02T03:04:05.006Z"}}`: StatusEvent("m", StatusSent, time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)),
	}
	for want, v := range cases {
		got, _ := json.Marshal(v)
		if string(got) != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
	empty := ""
	msg, _ := json.Marshal(ReceivedMessage{ID: "i", From: "1", Type: "reaction", Emoji: &empty, Timestamp: "t"})
	if !strings.Contains(string(msg), `"emoji":""`) {
		t.Errorf("an empty reaction emoji must stay on the wire: %s", msg)
	}
}

func TestParsePresence(t *testing.T) {
	p, err := ParsePresence(json.RawMessage(`{"chat":"15550002222","state":"composing"}`))
	if err != nil || p.Chat != "15550002222" || p.State != PresenceComposing {
		t.Fatalf("ParsePresence = %+v, %v", p, err)
	}
	for _, args := range []string{`{"chat":"15550002222","state":"typing"}`, `{"state":"paused"}`, `{"chat":"x","state":"paused"}`} {
		if _, err := ParsePresence(json.RawMessage(args)); err == nil {
			t.Errorf("ParsePresence(%s): want an error", args)
		}
	}
}
