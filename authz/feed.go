package authz

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds of the feed's stream.
const (
	maxEventLine = 64 << 10
	// maxEventSize bounds the data of one event (all its data lines): a
	// larger one is skipped.
	maxEventSize = 64 << 10
	// feedIdle: authql sends ": ping" every 15 s, so a stream silent for
	// longer than this is dead (a proxy or a peer gone without a FIN).
	feedIdle       = 45 * time.Second
	minFeedBackoff = 100 * time.Millisecond
	maxFeedBackoff = 10 * time.Second
)

// feedState is the feed's connection, read by every token check.
type feedState struct {
	mu        sync.Mutex
	up        bool      // connected and caught up (past `event: ready`)
	everUp    bool      // up at least once
	downSince time.Time // wall clock
	lastID    string    // the last event id applied
	recent    []seenID  // ids received within resumeWindow, oldest first
	retry     time.Duration
}

// seenID is an event id and when it was received (wall clock).
type seenID struct {
	id int64
	at time.Time
}

// resumeWindow: authql takes an event's id when its transaction writes it,
// not when it commits, so an event can commit just after one with a higher
// id (within a transaction's life: authql's AUTH_DB_TIMEOUT, 5 s by
// default). A reconnect resumes from before every id received this
// recently, and the events read twice are applied twice: applying is
// idempotent.
const (
	resumeWindow = 10 * time.Second
	maxRecentIDs = 4096
)

// noteID records an event id just applied.
func (f *feedState) noteID(id string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastID = id
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return
	}
	f.recent = append(f.recent, seenID{id: n, at: now})
	i := 0
	for i < len(f.recent) && (now.Sub(f.recent[i].at) > resumeWindow || len(f.recent)-i > maxRecentIDs) {
		i++
	}
	f.recent = f.recent[i:]
}

// resumeFrom is the Last-Event-ID of a reconnect: before the smallest id
// received within resumeWindow, else the last id; "0" at the first
// connection, which replays every event authql keeps (at least the access
// TTL): the revocations of every token still alive, made before this
// process started.
func (f *feedState) resumeFrom(now time.Time) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	low := int64(-1)
	for _, s := range f.recent {
		if now.Sub(s.at) <= resumeWindow && (low < 0 || s.id < low) {
			low = s.id
		}
	}
	switch {
	case low > 0:
		return strconv.FormatInt(low-1, 10)
	case f.lastID != "":
		return f.lastID
	}
	return "0"
}

// feedDown reports whether tokens must be refused because the feed is
// down: never yet connected, or disconnected for longer than FeedMaxLag.
// Wall-clock time: it measures the network, not token times.
func (v *Verifier) feedDown() bool {
	if v.feed == nil {
		return false
	}
	f := v.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.up {
		return false
	}
	// Until the first connection nothing is known of revocations made
	// before this process started: fail closed.
	return !f.everUp || time.Since(f.downSince) > v.cfg.FeedMaxLag
}

// FeedConnected reports whether the revocation feed is connected now and
// has caught up: authql has sent the end of its replay (`event: ready`).
func (v *Verifier) FeedConnected() bool {
	if v.feed == nil {
		return false
	}
	v.feed.mu.Lock()
	defer v.feed.mu.Unlock()
	return v.feed.up
}

func (f *feedState) setUp(up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.up && !up {
		f.downSince = time.Now()
	}
	f.up = up
	f.everUp = f.everUp || up
}

// follow reads the feed until ctx ends, reconnecting with backoff (and
// the server's retry: when it sent one) and Last-Event-ID.
func (v *Verifier) follow(ctx context.Context) {
	backoff := minFeedBackoff
	for ctx.Err() == nil {
		connected, err := v.stream(ctx)
		v.feed.setUp(false)
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = minFeedBackoff
		}
		v.feed.mu.Lock()
		if v.feed.retry > 0 {
			backoff = max(backoff, v.feed.retry)
		}
		v.feed.mu.Unlock()
		v.log.WarnContext(ctx, "authz: revocation feed disconnected; reconnecting", "err", err, "in", backoff)
		// Jitter, so that a fleet of services does not reconnect at once.
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, maxFeedBackoff)
	}
}

// stream makes one connection to the feed, with a fresh token, and applies
// its events until it fails; connected says whether it was answered 200.
func (v *Verifier) stream(ctx context.Context) (connected bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tctx, tcancel := context.WithTimeout(ctx, fetchTimeout)
	token, err := v.cfg.FeedToken(tctx)
	tcancel()
	if err != nil {
		return false, fmt.Errorf("feed token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.meta.EventsEndpoint, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Last-Event-ID", v.feed.resumeFrom(time.Now()))
	resp, err := v.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return false, fmt.Errorf("GET %s: status %d: %s", v.meta.EventsEndpoint, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	// Not up yet: authql replays the events missed first (up to 10,000),
	// and marks the end of the replay with `event: ready`; until then
	// revocations made before this connection may be unknown here, so the
	// feed counts as up only then (a stream that ends at the replay bound
	// never does).
	// A stream silent past feedIdle is dead: cancel it.
	idle := time.AfterFunc(feedIdle, cancel)
	defer idle.Stop()
	return true, v.readEvents(resp.Body, func() { idle.Reset(feedIdle) })
}

// sseEvent is one Server-Sent Event.
type sseEvent struct{ id, typ, data string }

// readEvents parses a text/event-stream (the WHATWG HTML "server-sent
// events" format: fields id, event, data, retry; comments; a blank line
// dispatches) and applies each event; `event: ready` marks the feed up.
// alive is called for every line.
func (v *Verifier) readEvents(body io.Reader, alive func()) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 4096), maxEventLine)
	var ev sseEvent
	var data []string
	size, dropped := 0, false // the event's data bytes; past maxEventSize
	for sc.Scan() {
		alive()
		line := sc.Text()
		if line == "" {
			if dropped {
				v.log.Warn("authz: a feed event larger than its bound; skipped", "id", ev.id, "max", maxEventSize)
			} else if ev.typ == "ready" {
				v.feed.setUp(true) // caught up: what follows is live
			} else if len(data) > 0 {
				ev.data = strings.Join(data, "\n")
				v.apply(ev)
			}
			ev, data, size, dropped = sseEvent{}, nil, 0, false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment: the heartbeat
		}
		name, val, _ := strings.Cut(line, ":")
		val = strings.TrimPrefix(val, " ")
		switch name {
		case "id":
			if !strings.ContainsRune(val, 0) {
				ev.id = val
			}
		case "event":
			ev.typ = val
		case "data":
			// Each line is bounded, not their number: bound the event, so
			// that a stream cannot grow memory without a blank line.
			if size += len(val) + 1; size > maxEventSize {
				data, dropped = nil, true
			} else if !dropped {
				data = append(data, val)
			}
		case "retry":
			if ms, err := strconv.Atoi(val); err == nil && ms >= 0 {
				v.feed.mu.Lock()
				v.feed.retry = min(max(time.Duration(ms)*time.Millisecond, minFeedBackoff), 30*time.Second)
				v.feed.mu.Unlock()
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("the stream ended")
}

// feedEvent is the data of a feed event.
type feedEvent struct {
	ID        int64     `json:"id"`
	Type      string    `json:"type"`
	At        time.Time `json:"at"`
	UserID    string    `json:"userId"`
	SessionID string    `json:"sessionId"`
	Roles     []string  `json:"roles"`
}

// apply records what an event changes for tokens already issued, then
// moves Last-Event-ID past it. Other types (SESSION_CREATED,
// PASSWORD_CHANGED, ...) change nothing here: the sessions they end come
// as SESSION_REVOKED events of their own.
func (v *Verifier) apply(ev sseEvent) {
	var e feedEvent
	if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
		v.log.Warn("authz: a feed event that is not JSON; skipped", "id", ev.id, "err", err)
	} else if v.cfg.Now().Sub(e.At) <= v.revs.keep {
		switch e.Type {
		case "SESSION_REVOKED":
			if e.SessionID != "" {
				v.revs.revokeSession(e.SessionID, e.At)
			}
		case "ACCOUNT_DISABLED":
			v.revs.disable(e.UserID, e.At)
		case "ROLES_CHANGED":
			v.revs.setRoles(e.UserID, e.At, e.Roles)
		}
	}
	v.revs.prune(v.cfg.Now())
	if ev.id != "" {
		v.feed.noteID(ev.id, time.Now())
	}
}
