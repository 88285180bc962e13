package auth

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/authql/authql/auth/audit"
	"github.com/authql/authql/models"
)

// DefaultAuditRetention is how long audit events are kept when
// Config.AuditRetention is zero.
const DefaultAuditRetention = 90 * 24 * time.Hour

// auditLog is what the service needs of its audit writer (audit.Writer):
// events queued without a database round trip, a flush for readers and
// for shutdown, and whether sign-ins may still be recorded.
type auditLog interface {
	Record(models.AuditEvent)
	Flush(context.Context) error
	Close(context.Context) error
	Room() error
	State() audit.Queue
}

var _ auditLog = (*audit.Writer)(nil)

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
	row.IP = models.Null(audit.Clean(c.IP, 64))
	row.UserAgent = models.Null(audit.Clean(c.UserAgent, 512))
	row.Detail = models.Null(audit.Clean(e.detail, 1024))
	s.audits.Record(row)
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
	return s.audits.Flush(ctx)
}

// auditRoom returns ServiceUnavailable (audit.ErrFull) when the audit
// queue has no room left for sign-ins (see audit.Writer), nil otherwise.
func (s *Service) auditRoom() error { return s.audits.Room() }

// AuditQueue returns the state of the audit queue, for metrics and
// readiness.
func (s *Service) AuditQueue() audit.Queue { return s.audits.State() }

// Close writes every audit event recorded so far, the pending counts of
// refusals by rate limits included, and stops the audit writer. While the
// database is unavailable it retries until ctx is done; the events still
// queued then are lost, and Close says how many. Events recorded after
// Close are written at once, one statement each. Call it before closing
// the database.
func (s *Service) Close(ctx context.Context) error {
	s.recordRateLimited(s.now(), true)
	return s.audits.Close(ctx)
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
	// Bounded: while the database is down the queue does not drain, and
	// the reader gets SERVICE_UNAVAILABLE rather than a wait without end.
	fctx, cancel := context.WithTimeout(ctx, audit.MaxWait)
	defer cancel()
	if err := s.FlushAudit(fctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, models.ErrUnavailable
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
