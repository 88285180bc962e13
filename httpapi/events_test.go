package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authql/authql/httpapi"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// sseEvent is one event of the revocation feed, its data decoded.
type sseEvent struct {
	ID    string
	Event string
	Data  struct {
		ID        int64     `json:"id"`
		Type      string    `json:"type"`
		At        time.Time `json:"at"`
		UserID    string    `json:"userId"`
		SessionID *string   `json:"sessionId"`
		Roles     []string  `json:"roles"`
	}
	Raw string
}

// sseStream reads a GET /events answer as a client does.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent // closed when the stream ends
	pings  atomic.Int32
	// ready is closed at the ready marker (not passed on as an event);
	// beforeReady counts the events before it, readyBad says why the
	// marker was malformed or repeated ("" when it was not).
	ready       chan struct{}
	beforeReady int
	readyBad    string
}

// openEvents opens GET /events with token and, unless empty, Last-Event-ID.
func openEvents(t *testing.T, base, token, lastID string) (*http.Response, *sseStream) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent, 100), ready: make(chan struct{})}
	go s.read(t)
	return resp, s
}

func (s *sseStream) read(t *testing.T) {
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	var e sseEvent
	n, ready := 0, false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" && e.Event == "ready":
			switch {
			case ready:
				s.readyBad = "a second ready marker"
			case e.ID != "" || e.Raw != "{}":
				s.readyBad = fmt.Sprintf("ready marker with id %q, data %q", e.ID, e.Raw)
			}
			if !ready {
				ready, s.beforeReady = true, n
				close(s.ready)
			}
			e = sseEvent{}
		case line == "":
			if e.Event != "" {
				n++
				if err := json.Unmarshal([]byte(e.Raw), &e.Data); err != nil {
					t.Errorf("event data %q: %v", e.Raw, err)
				}
				s.events <- e
			}
			e = sseEvent{}
		case line == ": ping":
			s.pings.Add(1)
		case strings.HasPrefix(line, "id: "):
			e.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			e.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			e.Raw = line[6:]
		}
	}
}

// next returns the stream's next event.
func (s *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case e, ok := <-s.events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return e
	case <-time.After(20 * time.Second):
		t.Fatal("no event within 20s")
	}
	return sseEvent{}
}

// want fails unless the next events are of types, for userID.
func (s *sseStream) want(t *testing.T, userID string, types ...string) []sseEvent {
	t.Helper()
	var got []sseEvent
	for _, typ := range types {
		e := s.next(t)
		if e.Event != typ || e.Data.Type != typ || e.Data.UserID != userID || e.ID != strconv.FormatInt(e.Data.ID, 10) {
			t.Fatalf("event %+v, want %s of %s", e, typ, userID)
		}
		got = append(got, e)
	}
	return got
}

// wantAfter is want after a resumption from after: the events a
// resumption sends again first (ids below after that may have committed
// late: models.LiveEventsCommittedLate) are skipped.
func (s *sseStream) wantAfter(t *testing.T, after int64, userID string, types ...string) []sseEvent {
	t.Helper()
	var got []sseEvent
	for len(got) < len(types) {
		e := s.next(t)
		if e.Data.ID < after && len(got) == 0 {
			continue
		}
		typ := types[len(got)]
		if e.Event != typ || e.Data.Type != typ || e.Data.UserID != userID || e.Data.ID <= after {
			t.Fatalf("event %+v, want %s of %s after %d", e, typ, userID, after)
		}
		got = append(got, e)
	}
	return got
}

// ended waits for the stream to end, failing on any further event.
func (s *sseStream) ended(t *testing.T, why string) {
	t.Helper()
	select {
	case e, ok := <-s.events:
		if ok {
			t.Fatalf("%s: event %+v, want the stream to end", why, e)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: the stream is still open after 20s", why)
	}
}

// feedReader registers a user holding the service role.
func feedReader(t *testing.T, ts *authtest.Server, email string) authtest.Tokens {
	t.Helper()
	tok := ts.Register(t, email, "password1")
	if _, err := ts.Svc.SetUserRoles(context.Background(), tok.UserID, []string{models.RoleService}); err != nil {
		t.Fatal(err)
	}
	return tok
}

func logout(t *testing.T, ts *authtest.Server, token string) {
	t.Helper()
	ts.Do(t, token, `mutation { logout }`, nil).OK(t)
}

func fastHeartbeat(c *authtest.Config) { c.HTTP.EventsHeartbeat = 20 * time.Millisecond }

// A reader of the feed gets another user's logout as it happens; resumed
// from Last-Event-ID it gets exactly the events it missed, then live ones.
func TestEventsFeed(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		var log authtest.SyncBuffer
		ts := authtest.NewServer(t, dsn, nil, func(c *authtest.Config) { c.Log = &log })
		reader := feedReader(t, ts, "reader@example.com")
		other := ts.Register(t, "other@example.com", "password1")
		resp, s := openEvents(t, ts.URL, reader.Access, "")
		if s == nil || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("GET /events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		authtest.WaitFor(t, "the stream to be counted", func() bool {
			return strings.Contains(authtest.Scrape(t, ts.URL), "authql_events_streams 1")
		})
		logout(t, ts, other.Access)
		e := s.want(t, other.UserID, models.LiveSessionRevoked)[0]
		if e.Data.SessionID == nil || *e.Data.SessionID != authtest.SID(t, other.Access) || e.Data.Roles != nil || e.Data.At.IsZero() {
			t.Errorf("event %+v, want the other user's session, no roles", e)
		}
		if strings.Contains(e.Raw, "roles") {
			t.Errorf("data %s has roles for an event without", e.Raw)
		}
		resp.Body.Close()
		s.ended(t, "closed by the client")
		authtest.WaitFor(t, "the stream's log line", func() bool { return strings.Count(log.String(), "path=/events") == 1 })

		// Missed while disconnected: a sign-in, and a role change.
		again := authtest.TokensOf(ts.Login(t, "other@example.com", "password1").OK(t), "login")
		if _, err := ts.Svc.SetUserRoles(context.Background(), other.UserID, []string{models.RoleUser, models.RoleService}); err != nil {
			t.Fatal(err)
		}
		_, s = openEvents(t, ts.URL, reader.Access, e.ID)
		missed := s.wantAfter(t, e.Data.ID, other.UserID, models.LiveSessionCreated, models.LiveRolesChanged)
		if *missed[0].Data.SessionID != authtest.SID(t, again.Access) || strings.Join(missed[1].Data.Roles, ",") != "service,user" {
			t.Errorf("missed events %+v", missed)
		}
		logout(t, ts, again.Access)
		if e := s.want(t, other.UserID, models.LiveSessionRevoked)[0]; e.Data.ID <= missed[1].Data.ID {
			t.Errorf("live event id %d after replayed %d", e.Data.ID, missed[1].Data.ID)
		}
	})
}

// Who may open the feed, and with what.
func TestEventsRefused(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil, func(c *authtest.Config) { c.HTTP.EventsMaxStreams = 1 })
		reader := feedReader(t, ts, "reader@example.com")
		plain := ts.Register(t, "plain@example.com", "password1")
		for _, c := range []struct {
			name, token, lastID string
			status              int
			code, reason        string
		}{
			{"NoToken", "", "", http.StatusUnauthorized, models.Unauthenticated, models.ReasonNoToken},
			{"BadToken", "not-a-token", "", http.StatusUnauthorized, models.Unauthenticated, models.ReasonTokenInvalid},
			{"WithoutPermission", plain.Access, "", http.StatusForbidden, models.Forbidden, ""},
			{"BadLastEventID", reader.Access, "-1", http.StatusBadRequest, models.BadUserInput, ""},
			{"LastEventIDNotANumber", reader.Access, "12abc", http.StatusBadRequest, models.BadUserInput, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				resp, s := openEvents(t, ts.URL, c.token, c.lastID)
				if s != nil {
					t.Fatal("stream opened")
				}
				wantFeedError(t, resp, c.status, c.code, c.reason)
			})
		}
		t.Run("TooManyStreams", func(t *testing.T) {
			_, s := openEvents(t, ts.URL, reader.Access, "")
			if s == nil {
				t.Fatal("first stream refused")
			}
			resp, _ := openEvents(t, ts.URL, reader.Access, "")
			wantFeedError(t, resp, http.StatusTooManyRequests, models.RateLimited, "")
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		})
	})
}

func wantFeedError(t *testing.T, resp *http.Response, status int, code, reason string) {
	t.Helper()
	var body struct {
		Errors []struct {
			Message    string
			Extensions map[string]any
		}
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil || len(body.Errors) != 1 {
		t.Fatalf("status %d body %q: want one JSON error", resp.StatusCode, raw)
	}
	ext := body.Errors[0].Extensions
	if resp.StatusCode != status || ext["code"] != code || (reason != "" && ext["reason"] != reason) {
		t.Errorf("status %d %v, want %d code %s reason %q", resp.StatusCode, ext, status, code, reason)
	}
}

// A stream ends when its access token expires, and when its own session
// is revoked (after telling of it).
func TestEventsStreamEnds(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil, fastHeartbeat)
		reader := feedReader(t, ts, "reader@example.com")
		t.Run("TokenExpiry", func(t *testing.T) {
			_, s := openEvents(t, ts.URL, reader.Access, "")
			authtest.WaitFor(t, "a heartbeat", func() bool { return s.pings.Load() > 0 })
			ts.Clock.Advance(16 * time.Minute) // past the 15m access TTL
			s.ended(t, "token expired")
		})
		t.Run("OwnSessionRevoked", func(t *testing.T) {
			tok := authtest.TokensOf(ts.Login(t, "reader@example.com", "password1").OK(t), "login")
			_, s := openEvents(t, ts.URL, tok.Access, "")
			logout(t, ts, tok.Access)
			s.want(t, tok.UserID, models.LiveSessionRevoked)
			s.ended(t, "own session revoked")
		})
		t.Run("PermissionRemoved", func(t *testing.T) {
			tok := authtest.TokensOf(ts.Login(t, "reader@example.com", "password1").OK(t), "login")
			_, s := openEvents(t, ts.URL, tok.Access, "")
			if _, err := ts.Svc.SetUserRoles(context.Background(), tok.UserID, []string{models.RoleUser}); err != nil {
				t.Fatal(err)
			}
			// The stream ends at the reader's own ROLES_CHANGED, or at
			// the heartbeat's check of its permission when that comes
			// first: no other event either way.
			for {
				select {
				case e, ok := <-s.events:
					if !ok {
						return
					}
					if e.Data.Type != models.LiveRolesChanged || e.Data.UserID != tok.UserID {
						t.Fatalf("event %+v after events:read was taken away", e)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("events:read taken away: the stream is still open after 20s")
				}
			}
		})
		t.Run("ReplayedPastDoesNotEnd", func(t *testing.T) {
			// The permission taken away above, then given back: a
			// resumption from before replays the taking, and goes on.
			if _, err := ts.Svc.SetUserRoles(context.Background(), reader.UserID, []string{models.RoleService}); err != nil {
				t.Fatal(err)
			}
			tok := authtest.TokensOf(ts.Login(t, "reader@example.com", "password1").OK(t), "login")
			_, s := openEvents(t, ts.URL, tok.Access, "0")
			other := ts.Register(t, "later@example.com", "password1")
			for {
				if e := s.next(t); e.Data.UserID == other.UserID {
					break
				}
			}
		})
	})
}

// A logout on one replica reaches a feed open on another.
func TestEventsAcrossReplicas(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	c := authtest.NewClock()
	a := authtest.NewServer(t, dsn, c)
	b := authtest.NewServer(t, dsn, c)
	ctx, cancel := context.WithCancel(context.Background())
	l, err := b.Svc.Listen(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-l.Done() })
	reader := feedReader(t, a, "reader@example.com")
	other := a.Register(t, "other@example.com", "password1")
	_, s := openEvents(t, b.URL, reader.Access, "")
	if s == nil {
		t.Fatal("feed on b refused")
	}
	logout(t, a, other.Access)
	// Earlier events of a may arrive first (b subscribed as they
	// committed); the logout must come.
	for {
		e := s.next(t)
		if e.Event == models.LiveSessionRevoked && e.Data.UserID == other.UserID {
			break
		}
	}
}

// Shutdown ends the open streams when it begins, rather than wait for
// them: the server stops within its timeout.
func TestEventsEndAtShutdown(t *testing.T) {
	t.Parallel()
	ts := authtest.NewServer(t, testdb.SQLite(t), nil)
	reader := feedReader(t, ts, "reader@example.com")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sqlDB, _ := ts.DB.DB()
	ready := httpapi.NewReadiness(sqlDB, ts.Svc, log)
	hs := httptest.NewUnstartedServer(httpapi.New(httpapi.DefaultConfig(), ts.Svc, log, nil, ready))
	hs.Start()
	defer hs.Close()
	_, s := openEvents(t, hs.URL, reader.Access, "")
	if s == nil {
		t.Fatal("stream refused")
	}
	serveErr := make(chan error, 1)
	serveErr <- http.ErrServerClosed
	if err := httpapi.Shutdown(ready, []*http.Server{hs.Config}, serveErr, 0, 5*time.Second, time.After, log); err != nil {
		t.Errorf("shutdown with a stream open: %v", err)
	}
	s.ended(t, "shutdown")
}

// waitReady waits for the ready marker and returns how many events came
// before it.
func (s *sseStream) waitReady(t *testing.T) int {
	t.Helper()
	select {
	case <-s.ready:
	case <-time.After(20 * time.Second):
		t.Fatal("no ready marker within 20s")
	}
	if s.readyBad != "" {
		t.Fatal(s.readyBad)
	}
	return s.beforeReady
}

// TestEventsReadyAfterReplay: the stream marks the end of its replay with
// `event: ready`, `data: {}` and no id, once: after every event recorded
// before it opened, before the live ones; at once without Last-Event-ID
// or with nothing to replay.
func TestEventsReadyAfterReplay(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil)
		reader := feedReader(t, ts, "reader@example.com")
		others := make([]authtest.Tokens, 3)
		for i := range others {
			others[i] = ts.Register(t, fmt.Sprintf("other%d@example.com", i), "password1")
		}
		last := others[len(others)-1].UserID

		_, s := openEvents(t, ts.URL, reader.Access, "0")
		before := s.waitReady(t)
		var lastReplayed sseEvent
		for range before {
			lastReplayed = s.next(t)
		}
		if before == 0 || lastReplayed.Data.UserID != last {
			t.Fatalf("%d events before ready, the last %+v, want all of them, the last of %s", before, lastReplayed, last)
		}
		logout(t, ts, others[0].Access)
		s.want(t, others[0].UserID, models.LiveSessionRevoked) // live, after the marker

		for name, lastID := range map[string]string{"NoLastEventID": "", "NothingToReplay": "999999999"} {
			_, s := openEvents(t, ts.URL, reader.Access, lastID)
			if n := s.waitReady(t); n != 0 {
				t.Errorf("%s: %d events before ready, want none", name, n)
			}
			logout(t, ts, others[1].Access)
			s.want(t, others[1].UserID, models.LiveSessionRevoked)
			others[1] = authtest.TokensOf(ts.Login(t, "other1@example.com", "password1").OK(t), "login")
		}
	})
}

// TestEventsReplayBoundNoReady: a stream that ends at the replay bound
// (10,000 events) ends without the ready marker: its reader has not caught
// up.
func TestEventsReplayBoundNoReady(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		ts := authtest.NewServer(t, dsn, nil)
		reader := feedReader(t, ts, "reader@example.com")
		events := make([]models.LiveEvent, 10050)
		for i := range events {
			events[i] = models.LiveEvent{At: ts.Clock.Now(), Type: models.LiveSessionCreated, UserID: reader.UserID}
		}
		if err := ts.DB.CreateInBatches(events, 500).Error; err != nil {
			t.Fatal(err)
		}
		_, s := openEvents(t, ts.URL, reader.Access, "0")
		n := 0
		for open := true; open; {
			select {
			case _, open = <-s.events:
				if open {
					n++
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("the stream is still open after %d events", n)
			}
		}
		select {
		case <-s.ready:
			t.Errorf("ready marker after %d events of a stream that ended at the replay bound", s.beforeReady)
		default:
		}
		if n < 10000 {
			t.Errorf("%d events before the end, want the replay bound", n)
		}
	})
}
