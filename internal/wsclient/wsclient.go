// Package wsclient is a small graphql-transport-ws client over
// github.com/coder/websocket, for authql's tests and its benchmark: it
// speaks the protocol message by message, so that tests see every message
// and the close code the server chose.
package wsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/coder/websocket"
)

// Protocol is the subprotocol the client offers.
const Protocol = "graphql-transport-ws"

// Options adjust a dial.
type Options struct {
	// Origin, when set, is sent as a browser would.
	Origin string
	// Subprotocols replace the offered Protocol (to test refusals).
	Subprotocols []string
	// HTTPClient dials (nil: http.DefaultClient).
	HTTPClient *http.Client
	// Header is added to the upgrade request.
	Header http.Header
}

// Conn is one socket.
type Conn struct {
	c *websocket.Conn
}

// Message is one protocol message.
type Message struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Dial opens a socket to url (http:// or https://, such as a test
// server's URL + "/query"). A refused upgrade returns the HTTP status.
func Dial(ctx context.Context, url string, opts Options) (*Conn, int, error) {
	url = "ws" + strings.TrimPrefix(url, "http")
	protos := opts.Subprotocols
	if protos == nil {
		protos = []string{Protocol}
	}
	h := opts.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if opts.Origin != "" {
		h.Set("Origin", opts.Origin)
	}
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: protos, HTTPHeader: h, HTTPClient: opts.HTTPClient})
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	if err != nil {
		return nil, status, err
	}
	// Larger than the server's own limit, so that tests of that limit see
	// the server's answer, not this client's.
	c.SetReadLimit(1 << 22)
	return &Conn{c: c}, status, nil
}

// Send writes one message.
func (c *Conn) Send(ctx context.Context, m Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.c.Write(ctx, websocket.MessageText, b)
}

// SendRaw writes b as one text message.
func (c *Conn) SendRaw(ctx context.Context, b []byte) error {
	return c.c.Write(ctx, websocket.MessageText, b)
}

// Init sends connection_init with payload and waits for connection_ack.
func (c *Conn) Init(ctx context.Context, payload map[string]any) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	if err := c.Send(ctx, Message{Type: "connection_init", Payload: b}); err != nil {
		return err
	}
	m, err := c.Next(ctx)
	if err != nil {
		return err
	}
	if m.Type != "connection_ack" {
		return fmt.Errorf("wsclient: %s instead of connection_ack: %s", m.Type, m.Payload)
	}
	return nil
}

// InitToken is Init with {"authorization": "Bearer <token>"}.
func (c *Conn) InitToken(ctx context.Context, token string) error {
	return c.Init(ctx, map[string]any{"authorization": "Bearer " + token})
}

// Subscribe starts operation id with query and vars.
func (c *Conn) Subscribe(ctx context.Context, id, query string, vars map[string]any) error {
	b, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	return c.Send(ctx, Message{Type: "subscribe", ID: id, Payload: b})
}

// Complete stops operation id.
func (c *Conn) Complete(ctx context.Context, id string) error {
	return c.Send(ctx, Message{Type: "complete", ID: id})
}

// Next returns the next message other than ping and pong (pings are
// answered). Once the server has closed the socket it returns a *Closed.
func (c *Conn) Next(ctx context.Context) (Message, error) {
	for {
		_, b, err := c.c.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != -1 {
				var ce websocket.CloseError
				errors.As(err, &ce)
				return Message{}, &Closed{Code: int(code), Reason: ce.Reason}
			}
			return Message{}, err
		}
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			return Message{}, fmt.Errorf("wsclient: not a protocol message: %q", b)
		}
		switch m.Type {
		case "ping":
			if err := c.Send(ctx, Message{Type: "pong"}); err != nil {
				return Message{}, err
			}
			continue
		case "pong":
			continue
		}
		return m, nil
	}
}

// WaitClose reads until the server closes the socket and returns how; the
// messages read on the way are returned too.
func (c *Conn) WaitClose(ctx context.Context) (*Closed, []Message, error) {
	var seen []Message
	for {
		m, err := c.Next(ctx)
		var cl *Closed
		if errors.As(err, &cl) {
			return cl, seen, nil
		} else if err != nil {
			return nil, seen, err
		}
		seen = append(seen, m)
	}
}

// Close closes the socket from the client's side (1000).
func (c *Conn) Close() error { return c.c.Close(websocket.StatusNormalClosure, "") }

// CloseWith closes the socket with code, as a client may choose any.
func (c *Conn) CloseWith(code int, reason string) error {
	return c.c.Close(websocket.StatusCode(code), reason)
}

// CloseNow drops the connection without a close handshake.
func (c *Conn) CloseNow() error { return c.c.CloseNow() }

// Closed is how the server closed the socket.
type Closed struct {
	Code   int
	Reason string
}

func (c *Closed) Error() string { return fmt.Sprintf("socket closed %d %q", c.Code, c.Reason) }
