package authz

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// newTestVerifier is a Verifier with no documents fetched: enough for the
// feed's parser and the revocation set, on clock now.
func newTestVerifier(now func() time.Time) *Verifier {
	v := &Verifier{
		cfg:  Config{Now: now, MaxTokenLife: time.Hour, FeedMaxLag: DefaultFeedMaxLag},
		log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		feed: &feedState{},
	}
	v.revs = newRevocations(time.Hour + MaxClockSkew)
	return v
}

// TestReadEvents: the Server-Sent Events parser applies each event once a
// blank line ends it, joins data lines, skips comments, keeps the last id
// for Last-Event-ID and takes retry: within bounds.
func TestReadEvents(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v := newTestVerifier(func() time.Time { return now })
	at := now.Add(-time.Minute).Format(time.RFC3339Nano)
	stream := ": ping\n" +
		"retry: 2500\n" +
		"id: 7\nevent: SESSION_REVOKED\ndata: {\"id\":7,\"type\":\"SESSION_REVOKED\",\"at\":\"" + at + "\",\n" +
		"data: \"userId\":\"u1\",\"sessionId\":\"s1\"}\n\n" +
		"id: 8\r\nevent: ACCOUNT_DISABLED\r\ndata: {\"id\":8,\"type\":\"ACCOUNT_DISABLED\",\"at\":\"" + at + "\",\"userId\":\"u2\"}\r\n\r\n" +
		"id: 9\nevent: ROLES_CHANGED\ndata: {\"id\":9,\"type\":\"ROLES_CHANGED\",\"at\":\"" + at + "\",\"userId\":\"u3\",\"roles\":[\"user\"]}\n\n" +
		"id: 10\ndata: not json\n\n" +
		"id: 11\nevent: SESSION_REVOKED\ndata: {\"id\":11,\"type\":\"SESSION_REVOKED\",\"at\":\"" + at + "\",\"userId\":\"u4\",\"sessionId\":\"s4\"}\n" // no blank line: not dispatched
	lines := 0
	err := v.readEvents(strings.NewReader(stream), func() { lines++ })
	if err == nil || !strings.Contains(err.Error(), "ended") {
		t.Errorf("readEvents = %v, want the stream's end", err)
	}
	before := now.Add(-2 * time.Minute)
	if !v.revs.refused("s1", "u1", before) {
		t.Error("session s1 not refused after SESSION_REVOKED")
	}
	if !v.revs.refused("other", "u2", before) || v.revs.refused("other", "u2", now) {
		t.Error("ACCOUNT_DISABLED: want tokens issued before refused, after accepted")
	}
	if roles, ok := v.revs.rolesSince("u3", before); !ok || len(roles) != 1 || roles[0] != "user" {
		t.Errorf("ROLES_CHANGED: rolesSince = %v, %v", roles, ok)
	}
	if _, ok := v.revs.rolesSince("u3", now); ok {
		t.Error("ROLES_CHANGED applies to a token issued after it")
	}
	if v.revs.refused("s4", "u4", before) {
		t.Error("an event without its blank line was applied")
	}
	if v.feed.lastID != "10" || v.feed.retry != 2500*time.Millisecond {
		t.Errorf("lastID %q retry %s, want 10 and 2.5s", v.feed.lastID, v.feed.retry)
	}
	if lines == 0 {
		t.Error("alive never called")
	}
}

// TestReadEventsLineBound: a line longer than maxEventLine ends the stream
// rather than growing the buffer.
func TestReadEventsLineBound(t *testing.T) {
	v := newTestVerifier(time.Now)
	err := v.readEvents(strings.NewReader("data: "+strings.Repeat("x", maxEventLine+1)+"\n\n"), func() {})
	if err == nil || strings.Contains(err.Error(), "ended") {
		t.Errorf("readEvents = %v, want a too-long error", err)
	}
}

// TestRevocationsPruned: entries go once no token they match can still be
// valid, so memory is bounded; until then they stay.
func TestRevocationsPruned(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rv := newRevocations(time.Hour)
	rv.revokeSession("s", now)
	rv.disable("u", now)
	rv.setRoles("u", now, []string{"user"})
	rv.prune(now.Add(59 * time.Minute))
	if rv.size() != 3 {
		t.Fatalf("pruned too early: %d entries", rv.size())
	}
	rv.prune(now.Add(61 * time.Minute))
	if rv.size() != 0 {
		t.Errorf("%d entries after their tokens expired", rv.size())
	}
}

// TestWatchSession: a watch ends when its session is revoked, at once for
// one revoked already, and stopping a watch forgets it.
func TestWatchSession(t *testing.T) {
	rv := newRevocations(time.Hour)
	ch, stop := rv.watch("s")
	other, stopOther := rv.watch("t")
	rv.revokeSession("s", time.Now())
	select {
	case <-ch:
	default:
		t.Error("watch not ended by the revocation")
	}
	stop()
	stopOther()
	select {
	case <-other:
		t.Error("another session's watch ended")
	default:
	}
	if len(rv.watchers) != 0 {
		t.Errorf("watchers kept: %v", rv.watchers)
	}
	again, _ := rv.watch("s")
	select {
	case <-again:
	default:
		t.Error("a watch of a revoked session not ended at once")
	}
}

func TestMaxAge(t *testing.T) {
	for cc, want := range map[string]time.Duration{
		"":                         defaultKeysMaxAge,
		"public, max-age=300":      5 * time.Minute,
		"max-age=0":                minKeysMaxAge,
		"max-age=86400, public":    maxKeysMaxAge,
		"no-cache, MAX-AGE=\"90\"": 90 * time.Second,
		"max-age=nope":             defaultKeysMaxAge,
	} {
		if got := maxAge(cc); got != want {
			t.Errorf("maxAge(%q) = %s, want %s", cc, got, want)
		}
	}
}

// TestResumeFrom: a reconnect resumes before the ids received recently
// (an event may commit after one with a higher id), from the last id once
// they are old, and from 0 at the first connection.
func TestResumeFrom(t *testing.T) {
	var f feedState
	now := time.Now()
	if got := f.resumeFrom(now); got != "0" {
		t.Errorf("first connection: %q, want 0", got)
	}
	f.noteID("40", now.Add(-time.Minute))
	f.noteID("41", now.Add(-2*time.Second))
	f.noteID("43", now.Add(-time.Second))
	if got := f.resumeFrom(now); got != "40" {
		t.Errorf("with 41 and 43 recent: %q, want 40", got)
	}
	if got := f.resumeFrom(now.Add(time.Minute)); got != "43" {
		t.Errorf("a minute later: %q, want the last id 43", got)
	}
	if len(f.recent) != 2 {
		t.Errorf("kept %d ids, want the 2 within the window", len(f.recent))
	}
}

// TestReadEventsEventBound: an event whose data lines, each within the
// line bound, add up to more than maxEventSize is skipped (and its id not
// taken), and the events after it are applied.
func TestReadEventsEventBound(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v := newTestVerifier(func() time.Time { return now })
	at := now.Add(-time.Minute).Format(time.RFC3339Nano)
	// Valid JSON once joined: the padding lines are whitespace.
	pad := strings.Repeat("data: "+strings.Repeat(" ", 1023)+"\n", 65)
	stream := "id: 5\nevent: SESSION_REVOKED\ndata: {\"id\":5,\"type\":\"SESSION_REVOKED\",\"at\":\"" + at + "\",\"userId\":\"u1\",\n" +
		pad + "data: \"sessionId\":\"big\"}\n\n" +
		"id: 6\nevent: SESSION_REVOKED\ndata: {\"id\":6,\"type\":\"SESSION_REVOKED\",\"at\":\"" + at + "\",\"userId\":\"u2\",\"sessionId\":\"small\"}\n\n"
	v.readEvents(strings.NewReader(stream), func() {})
	before := now.Add(-2 * time.Minute)
	if v.revs.refused("big", "u1", before) {
		t.Error("an event past maxEventSize was applied")
	}
	if !v.revs.refused("small", "u2", before) || v.feed.lastID != "6" {
		t.Errorf("the event after it: applied %v, lastID %q, want applied and 6", v.revs.refused("small", "u2", before), v.feed.lastID)
	}
	// Just within the bound, the same event is applied.
	v = newTestVerifier(func() time.Time { return now })
	small := strings.Replace(stream, pad, strings.Repeat("data: "+strings.Repeat(" ", 1023)+"\n", 60), 1)
	v.readEvents(strings.NewReader(small), func() {})
	if !v.revs.refused("big", "u1", before) {
		t.Error("an event within maxEventSize was not applied")
	}
}

// feedServer is a real SSE server for the follower: each connection gets
// the next of streams, written and flushed part by part, each part sent
// once its gate (when not nil) is closed; then it returns (the stream
// ends) when end is set, else it waits for the client to go.
type feedPart struct {
	gate chan struct{}
	text string
}

func feedServer(t *testing.T, parts []feedPart, end bool) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for _, p := range parts {
			if p.gate != nil {
				select {
				case <-p.gate:
				case <-r.Context().Done():
					return
				}
			}
			io.WriteString(w, p.text)
			w.(http.Flusher).Flush()
		}
		if !end {
			<-r.Context().Done()
		}
	}))
	t.Cleanup(hs.Close)
	return hs.URL + "/events"
}

// followerOn is a test verifier reading the feed at url.
func followerOn(url string, now time.Time) *Verifier {
	v := newTestVerifier(func() time.Time { return now })
	v.meta.EventsEndpoint = url
	v.client = &http.Client{}
	v.cfg.FeedToken = func(context.Context) (string, error) { return "token", nil }
	return v
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

// TestFeedUpOnlyAfterReady: the follower counts the feed up only at
// authql's `event: ready` (the end of the replay), not at the 200 nor at
// replayed events; a stream that ends before it (the replay bound) never
// counts as up, though its events are applied.
func TestFeedUpOnlyAfterReady(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := now.Add(-time.Minute).Format(time.RFC3339Nano)
	revoked := func(id, sid string) string {
		return "id: " + id + "\nevent: SESSION_REVOKED\ndata: {\"id\":" + id + ",\"type\":\"SESSION_REVOKED\",\"at\":\"" + at + "\",\"userId\":\"u\",\"sessionId\":\"" + sid + "\"}\n\n"
	}
	before := now.Add(-2 * time.Minute)

	t.Run("ReplayBound", func(t *testing.T) {
		v := followerOn(feedServer(t, []feedPart{{text: revoked("1", "s1")}}, true), now)
		connected, err := v.stream(context.Background())
		if !connected || err == nil {
			t.Fatalf("stream = %v, %v, want answered, then ended", connected, err)
		}
		if !v.revs.refused("s1", "u", before) {
			t.Error("the replayed event was not applied")
		}
		if v.feed.everUp || v.FeedConnected() {
			t.Error("a stream that ended before `event: ready` counted as up")
		}
	})

	t.Run("Ready", func(t *testing.T) {
		gate := make(chan struct{})
		v := followerOn(feedServer(t, []feedPart{
			{text: ": ping\n\n" + revoked("2", "s2")},
			{gate: gate, text: "event: ready\ndata: {}\n\n"},
			{text: revoked("3", "s3")},
		}, false), now)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			v.stream(ctx)
		}()
		defer func() { cancel(); <-done }()
		waitUntil(t, "the replayed event applied", func() bool { return v.revs.refused("s2", "u", before) })
		if v.FeedConnected() || !v.feedDown() {
			t.Fatal("the feed counts as up during the replay")
		}
		close(gate)
		waitUntil(t, "the live event applied", func() bool { return v.revs.refused("s3", "u", before) })
		if !v.FeedConnected() || v.feedDown() {
			t.Error("the feed is not up after `event: ready`")
		}
		v.feed.mu.Lock()
		defer v.feed.mu.Unlock()
		if v.feed.lastID != "3" {
			t.Errorf("lastID %q, want 3", v.feed.lastID)
		}
	})
}
