package auth

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/authql/authql/models"
)

// DefaultAuditRetention is how long audit events are kept when
// Config.AuditRetention is zero.
const DefaultAuditRetention = 90 * 24 * time.Hour

// The audit writer's sizes. A batch of 256 events is one INSERT of about
// 2,800 parameters, well under both databases' limits; 150 ms bounds how
// long an event waits for a batch to fill.
const (
	auditBatchSize    = 256
	auditQueueSize    = 4096
	auditFlushEvery   = 150 * time.Millisecond
	auditWriteTimeout = 30 * time.Second
)

// event is what a Service method knows of an audit event; audit adds the
// time, the client and an id. A nil err is a success; otherwise the event
// is a failure whose reason is the code of err, the code the caller got.
type event struct {
	typ                        models.AuditEventType
	err                        error
	userID, actorID, sessionID string
	detail                     string
}

func (e event) outcome() models.AuditOutcome {
	if e.err != nil {
		return models.AuditFailure
	}
	return models.AuditSuccess
}

// audit records e as happening now, for the request's client: it counts it
// for metrics and queues it for the audit writer. Queuing costs no database
// round trip: the writer inserts events in batches, so that a refresh does
// not pay for a second commit.
func (s *Service) audit(ctx context.Context, e event) {
	s.cfg.Observer.AuthEvent(string(e.typ), string(e.outcome()))
	s.record(s.now(), ClientFrom(ctx), e)
}

// record queues e for the audit writer without counting it.
func (s *Service) record(at time.Time, c Client, e event) {
	row := models.NewAuditEvent(at, e.typ, e.outcome())
	if e.err != nil {
		row.Reason = models.Null(models.ErrorCode(e.err))
	}
	row.UserID = models.Null(e.userID)
	row.ActorID = models.Null(e.actorID)
	row.SessionID = models.Null(e.sessionID)
	row.IP = models.Null(clean(c.IP, 64))
	row.UserAgent = models.Null(clean(c.UserAgent, 512))
	row.Detail = models.Null(clean(e.detail, 1024))
	s.audits.add(row)
}

// clean makes s storable in a PostgreSQL text column of at most max bytes:
// valid UTF-8 without NUL, cut at a character boundary. A User-Agent may
// hold any byte a client sends; one PostgreSQL refused would fail the
// whole batch it is in.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) <= max {
		return s
	}
	s = s[:max]
	// Drop a character cut in two.
	return strings.ToValidUTF8(s, "")
}

// userIDOf is u's id, or "" for no user.
func userIDOf(u *models.User) string {
	if u == nil {
		return ""
	}
	return u.ID
}

// auditRefresh records the outcome of a refresh: REFRESH, or
// REFRESH_REUSE when the token presented had been rotated already. A
// refresh refused before the token was found has no user or session:
// token hashes are never recorded.
func (s *Service) auditRefresh(ctx context.Context, rot models.Rotation, err error) {
	e := event{typ: models.AuditRefresh, err: err}
	if rot.Reuse {
		e.typ = models.AuditRefreshReuse
	} else if rot.Retry && err == nil {
		e.detail = "retry" // the unused successors were spent
	}
	if rot.Session != nil {
		e.userID, e.sessionID = rot.Session.UserID, rot.Session.ID
	}
	s.audit(ctx, e)
}

// auditRoles records a change of userID's roles by the request's
// principal (none for a change made at start, by EnsureAdmin).
func (s *Service) auditRoles(ctx context.Context, userID string, requested []string, u *models.User, err error) {
	e := event{typ: models.AuditRolesChanged, err: err, detail: strings.Join(requested, ",")}
	if u != nil {
		e.userID, e.detail = u.ID, strings.Join(u.RoleNames(), ",")
	} else if id, perr := uuid.Parse(userID); perr == nil {
		e.userID = id.String()
	}
	if p, _ := PrincipalFrom(ctx); p != nil {
		e.actorID = p.UserID
	}
	s.audit(ctx, e)
}

// errRefused is the failure of RATE_LIMITED audit events: the reason is
// the code the refused callers got.
var errRefused = models.Errorf(models.RateLimited, "refused by a rate limit")

// auditRateLimited records one request refused under the rate-limit
// counter key (see limitKey). Every refusal is counted for metrics, but a
// flood must not become a flood of audit rows: the refusals of one counter
// are recorded as at most one RATE_LIMITED event per rateAuditEvery, whose
// detail says how many it stands for (see rateAudits).
//
// userID is the user a per-user limit counts ("" for the limits of
// clients): the event names it.
func (s *Service) auditRateLimited(ctx context.Context, key, userID string, now time.Time) {
	s.cfg.Observer.AuthEvent(string(models.AuditRateLimited), string(models.AuditFailure))
	if r, ok := s.rateAudits.refused(key, now, ClientFrom(ctx), userID, ""); ok {
		s.record(r.at, r.client, r.event())
	}
}

// recordRateLimited queues the RATE_LIMITED events that are due (all of
// them when all is set, at shutdown), and logs the refused cookie origins
// due (see warnOrigin).
func (s *Service) recordRateLimited(now time.Time, all bool) {
	for _, r := range s.rateAudits.sweep(now, all) {
		s.record(r.at, r.client, r.event())
	}
	for _, r := range s.originWarnings.sweep(now, all) {
		s.logOrigin(context.Background(), r)
	}
}

// FlushAudit writes every audit event recorded so far by this process,
// including the refusals of rate limits due for recording, and returns
// when they are in the database (or ctx is done).
func (s *Service) FlushAudit(ctx context.Context) error {
	s.recordRateLimited(s.now(), false)
	return s.audits.flush(ctx)
}

// Close writes every audit event recorded so far, the pending counts of
// refusals by rate limits included, and stops the audit writer. Events
// recorded after Close are written at once, one statement each. Call it
// before closing the database.
func (s *Service) Close(ctx context.Context) error {
	s.recordRateLimited(s.now(), true)
	return s.audits.close(ctx)
}

// AuditLog returns up to first audit events (models.DefaultPageSize when
// nil) after the cursor after, newest first, optionally only those of one
// user or one type. It first writes the events this process has queued,
// so that a reader sees everything recorded before the call. It returns
// BadUserInput for first out of range or an invalid cursor.
func (s *Service) AuditLog(ctx context.Context, first *int, after, userID *string, typ *models.AuditEventType) ([]*models.AuditEvent, error) {
	n, c, err := page(first, after)
	if err != nil {
		return nil, err
	}
	var f models.AuditFilter
	if typ != nil {
		f.Type = *typ
	}
	if userID != nil {
		// Stored ids are canonical UUIDs; anything else matches nothing.
		id := *userID
		if u, err := uuid.Parse(id); err == nil {
			id = u.String()
		}
		f.UserID = &id
	}
	if err := s.FlushAudit(ctx); err != nil {
		return nil, err
	}
	return models.AuditEvents(ctx, s.db, n, c, f)
}

// purgeAudit records the refusals of rate limits due for recording, then
// deletes the audit events older than Config.AuditRetention and returns
// how many.
func (s *Service) purgeAudit(ctx context.Context, now time.Time) (int64, error) {
	s.recordRateLimited(now, false)
	return models.PurgeAuditEvents(ctx, s.db, now.Add(-s.cfg.AuditRetention))
}

// auditWriter inserts audit events in batches from a goroutine of its own:
// one INSERT per auditBatchSize events, or per auditFlushEvery when fewer
// come. Its queue is bounded; when it is full, add blocks its caller until
// the writer has caught up. That back-pressure slows requests down rather
// than drop events: an audit log that loses events under load, when an
// attack is most likely, would be worth little.
type auditWriter struct {
	db    *gorm.DB
	log   *slog.Logger
	batch int
	every time.Duration

	// mu is held shared while an event is queued and exclusively to close
	// the writer, so that no event is queued once it has stopped reading.
	mu      sync.RWMutex
	closed  bool
	queue   chan models.AuditEvent
	flushes chan chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newAuditWriter(db *gorm.DB, log *slog.Logger, queueSize, batch int, every time.Duration) *auditWriter {
	w := &auditWriter{
		db: db, log: log, batch: batch, every: every,
		queue:   make(chan models.AuditEvent, queueSize),
		flushes: make(chan chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go w.run()
	return w
}

// add queues e, waiting while the queue is full. Once the writer is
// closed, it writes e itself.
func (w *auditWriter) add(e models.AuditEvent) {
	w.mu.RLock()
	if !w.closed {
		w.queue <- e
		w.mu.RUnlock()
		return
	}
	w.mu.RUnlock()
	w.write([]models.AuditEvent{e})
}

// flush returns once every event queued before the call is written.
func (w *auditWriter) flush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case w.flushes <- ack:
	case <-w.done:
		return nil // closed: everything queued was written
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops the writer after it has written everything queued.
func (w *auditWriter) close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.stop)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *auditWriter) run() {
	defer close(w.done)
	buf := make([]models.AuditEvent, 0, w.batch)
	write := func() {
		if len(buf) > 0 {
			w.write(buf)
			buf = buf[:0]
		}
	}
	take := func(e models.AuditEvent) {
		if buf = append(buf, e); len(buf) == w.batch {
			write()
		}
	}
	// drain writes everything queued now.
	drain := func() {
		for {
			select {
			case e := <-w.queue:
				take(e)
			default:
				write()
				return
			}
		}
	}
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case e := <-w.queue:
			take(e)
		case <-t.C:
			write()
		case ack := <-w.flushes:
			drain()
			close(ack)
		case <-w.stop:
			// No event can be queued any more (see mu): what is in the
			// queue now is the last of it.
			drain()
			return
		}
	}
}

// write inserts events in one statement. Should that fail, it inserts them
// one by one, so that one row the database refuses does not take the rest
// of its batch with it; rows still refused are logged with what identifies
// them, the only trace left of them.
func (w *auditWriter) write(events []models.AuditEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), auditWriteTimeout)
	defer cancel()
	err := models.InsertAuditEvents(ctx, w.db, events)
	if err == nil {
		return
	}
	if len(events) > 1 {
		w.log.Warn("audit batch refused; writing its events one by one", "events", len(events), "err", err)
		for i := range events {
			if err := models.InsertAuditEvents(ctx, w.db, events[i:i+1]); err != nil {
				w.logLost(events[i], err)
			}
		}
		return
	}
	w.logLost(events[0], err)
}

func (w *auditWriter) logLost(e models.AuditEvent, err error) {
	w.log.Error("audit event not recorded", "type", e.Type, "outcome", e.Outcome, "at", e.At,
		"user", deref(e.UserID), "session", deref(e.SessionID), "ip", deref(e.IP), "err", err)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// rateAuditEvery is the most often the refusals of one rate-limit counter
// are recorded.
const rateAuditEvery = time.Minute

// maxRateAuditKeys bounds the counters whose refusals are coalesced one by
// one. Past it (refusals from more clients in a minute than that), the
// refusals of a new counter are coalesced with those of every other
// untracked counter of the same limit, in one event per limit per minute
// without a client: a flood from many addresses stays a few rows a minute.
const maxRateAuditKeys = 10_000

// rateAudits coalesces the refusals of each rate-limit counter: the first
// refusal is recorded at once; later ones are counted, and recorded as one
// event once rateAuditEvery has passed since the last, at the next refusal
// or the next sweep (FlushAudit, Purge, Close), whichever comes first. An
// event's detail is "<limit> (<n> refused)": the limit's name and how many
// refusals it stands for, the last of them at the event's time.
//
// The warnings for refused cookie origins are coalesced by one too (see
// warnOrigin), each a log line instead of an event.
type rateAudits struct {
	mu sync.Mutex
	m  map[string]*rateAudit
}

// rateAudit is one counter's refusals since its last recorded event.
type rateAudit struct {
	limit    string
	recorded time.Time // when its last event was recorded
	pending  int       // refusals since then, not yet recorded
	at       time.Time // the latest of them
	client   Client    // the latest one's client
	user     string    // the user a per-user limit counts
	note     string    // what else the latest one said (a refused origin)
}

// rateEvent is a RATE_LIMITED event due for recording.
type rateEvent struct {
	limit  string
	n      int
	at     time.Time
	client Client
	user   string
	note   string
}

func (r rateEvent) event() event {
	return event{typ: models.AuditRateLimited, err: errRefused, userID: r.user, detail: fmt.Sprintf("%s (%d refused)", r.limit, r.n)}
}

// refused counts one refusal under key at now by client (of user, for a
// per-user limit, with a note for the record), and returns the event to
// record when one is due.
func (ra *rateAudits) refused(key string, now time.Time, client Client, user, note string) (rateEvent, bool) {
	limit, _, _ := strings.Cut(key, ":")
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.m == nil {
		ra.m = map[string]*rateAudit{}
	}
	r := ra.m[key]
	if r == nil && len(ra.m) >= maxRateAuditKeys {
		key, client, user = limit+":*", Client{}, ""
		r = ra.m[key]
	}
	if r == nil {
		r = &rateAudit{limit: limit}
		ra.m[key] = r
	}
	r.pending++
	r.at, r.client, r.user, r.note = now, client, user, note
	if !r.recorded.IsZero() && now.Sub(r.recorded) < rateAuditEvery {
		return rateEvent{}, false
	}
	e := r.due()
	r.recorded, r.pending = now, 0
	return e, true
}

// due is the event of r's pending refusals.
func (r *rateAudit) due() rateEvent {
	return rateEvent{limit: r.limit, n: r.pending, at: r.at, client: r.client, user: r.user, note: r.note}
}

// sweep returns the events due at now (every pending one when all is set)
// and forgets the counters that have been quiet for rateAuditEvery: their
// next refusal is recorded at once anyway.
func (ra *rateAudits) sweep(now time.Time, all bool) []rateEvent {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	var out []rateEvent
	for key, r := range ra.m {
		due := now.Sub(r.recorded) >= rateAuditEvery
		switch {
		case r.pending > 0 && (due || all):
			out = append(out, r.due())
			r.recorded, r.pending = now, 0
		case r.pending == 0 && due:
			delete(ra.m, key)
		}
	}
	return out
}
