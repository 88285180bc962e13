package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/graph"
	"github.com/authql/authql/models"
)

// The revocation feed's bounds (GET /events).
const (
	// DefaultEventsMaxStreams is how many streams one user may hold open
	// (AUTH_EVENTS_MAX_STREAMS): a service runs a few replicas, each
	// with one stream.
	DefaultEventsMaxStreams = 10
	// DefaultEventsMaxStreamsTotal bounds the streams of every user
	// together: each holds a goroutine, a subscription and a connection.
	DefaultEventsMaxStreamsTotal = 1000
	// DefaultEventsHeartbeat is how often an idle stream sends `: ping`,
	// so that proxies keep it open and a dead client is found out.
	DefaultEventsHeartbeat = 15 * time.Second
	// eventsWriteTimeout bounds each write to a stream: a client that
	// stops reading is disconnected rather than hold a goroutine and its
	// buffers (it resumes with Last-Event-ID).
	eventsWriteTimeout = 10 * time.Second
	// eventsReplayPage is how many events one query of a resumption
	// reads; eventsMaxReplay how many one stream replays before it ends,
	// so that a client far behind catches up over a few connections,
	// each of bounded memory, rather than one of unbounded.
	eventsReplayPage = 500
	eventsMaxReplay  = 10000
)

// feed serves GET /events, the revocation feed: Server-Sent Events of
// every user's live events, for the services that verify authql's tokens
// and must learn of revocations and role changes (see README "Revocation
// feed").
type feed struct {
	svc       *auth.Service
	log       *slog.Logger
	perUser   int
	total     int
	heartbeat time.Duration
	// closing ends every stream and refuses new ones: shutdown has begun.
	closing <-chan struct{}

	mu    sync.Mutex
	users map[string]int
	open  int
}

func newFeed(cfg Config, svc *auth.Service, log *slog.Logger, ready *Readiness) *feed {
	f := &feed{
		svc: svc, log: log, perUser: cfg.EventsMaxStreams, total: cfg.EventsMaxStreamsTotal,
		heartbeat: cfg.EventsHeartbeat, closing: ready.Draining(), users: map[string]int{},
	}
	if f.perUser <= 0 {
		f.perUser = DefaultEventsMaxStreams
	}
	if f.total <= 0 {
		f.total = DefaultEventsMaxStreamsTotal
	}
	if f.heartbeat <= 0 {
		f.heartbeat = DefaultEventsHeartbeat
	}
	return f
}

// Open returns how many streams are open.
func (f *feed) Open() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open
}

// acquire counts a stream of userID, or refuses it past the bounds.
func (f *feed) acquire(userID string) (release func(), ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.open >= f.total || f.users[userID] >= f.perUser {
		return nil, false
	}
	f.open++
	f.users[userID]++
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.open--
		if f.users[userID]--; f.users[userID] == 0 {
			delete(f.users, userID)
		}
	}, true
}

var (
	errBadLastEventID = models.Errorf(models.BadUserInput, "Last-Event-ID must be the id of an event: a whole number")
	errTooManyStreams = models.RateLimitedf(10*time.Second, "too many open event streams; close one or try again later")
	errFeedClosing    = &models.Error{Code: models.ServiceUnavailable, Message: "shutting down; reconnect", RetryAfter: time.Second}
)

func (f *feed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	after, resume, ok := lastEventID(r.Header)
	if !ok {
		feedError(w, errBadLastEventID)
		return
	}
	// The user's current permissions (their roles now, not the token's
	// claim): a service whose role was taken away is refused at once.
	if err := f.svc.Authorize(ctx, auth.Rule{Permission: models.PermEventsRead}); err != nil {
		feedError(w, err)
		return
	}
	p, _ := auth.PrincipalFrom(ctx)
	if info := graph.RequestInfoFrom(ctx); info != nil {
		info.UserID = p.UserID
	}
	select {
	case <-f.closing:
		feedError(w, errFeedClosing)
		return
	default:
	}
	release, ok := f.acquire(p.UserID)
	if !ok {
		feedError(w, errTooManyStreams)
		return
	}
	defer release()
	// Subscribed before the replay reads the table, so that an event
	// committed in between is in one or the other (or both: see sent).
	sub := f.svc.Live().Subscribe("")
	defer sub.Cancel()
	s := &stream{f: f, w: w, rc: http.NewResponseController(w), p: p, sub: sub}
	end := s.serve(r, after, resume)
	if info := graph.RequestInfoFrom(ctx); info != nil {
		info.Outcome = end
	}
}

// lastEventID reads the Last-Event-ID header: the id to resume after, and
// whether there is one; ok is false when it is not a whole number.
func lastEventID(h http.Header) (after int64, resume, ok bool) {
	v := strings.TrimSpace(h.Get("Last-Event-ID"))
	if v == "" {
		return 0, false, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || len(v) > 19 || strings.HasPrefix(v, "+") {
		return 0, false, false
	}
	return n, true, true
}

// feedError answers a refused stream with the status of err's code and a
// GraphQL-shaped error, as /query's clients read them.
func feedError(w http.ResponseWriter, err error) {
	var e *models.Error
	if !errors.As(err, &e) {
		e = &models.Error{Code: models.ErrorCode(err), Message: models.ErrorMessage(err)}
	}
	status := http.StatusInternalServerError
	switch e.Code {
	case models.BadUserInput:
		status = http.StatusBadRequest
	case models.Unauthenticated:
		status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	case models.Forbidden:
		status = http.StatusForbidden
	case models.RateLimited:
		status = http.StatusTooManyRequests
	case models.ServiceUnavailable:
		status = http.StatusServiceUnavailable
	}
	ext := map[string]any{"code": e.Code}
	if reason := models.Reason(err); reason != "" {
		ext["reason"] = reason
	}
	if e.RetryAfter > 0 {
		ext["retryAfter"] = e.RetryAfterSeconds()
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfterSeconds()))
	}
	msg := e.Message
	if status == http.StatusInternalServerError {
		msg, ext = "internal error", map[string]any{"code": models.Internal}
	}
	body, _ := json.Marshal(map[string]any{"errors": []map[string]any{{"message": msg, "extensions": ext}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s\n", body)
}
