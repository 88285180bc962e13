package auth

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
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
	auditBatchSize  = 256
	auditFlushEvery = 150 * time.Millisecond
	// auditWriteTimeout bounds one INSERT (AUTH_DB_TIMEOUT bounds it
	// too): past it the batch is retried.
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

// errAuditFull refuses sign-ins while the audit queue is nearly full: a
// sign-in that could not be recorded must not happen at all.
var errAuditFull = &models.Error{
	Code:       models.ServiceUnavailable,
	Message:    "sign-ins are paused while the audit log catches up; retry later",
	RetryAfter: auditRetryMax,
}

// auditRoom returns errAuditFull when the audit queue has no room left
// for sign-ins (see auditWriter), nil otherwise.
func (s *Service) auditRoom() error {
	if s.audits.refusing() {
		return errAuditFull
	}
	return nil
}

// AuditQueue returns the state of the audit queue, for metrics and
// readiness.
func (s *Service) AuditQueue() AuditQueue { return s.audits.state() }

// Close writes every audit event recorded so far, the pending counts of
// refusals by rate limits included, and stops the audit writer. While the
// database is unavailable it retries until ctx is done; the events still
// queued then are lost, and Close says how many. Events recorded after
// Close are written at once, one statement each. Call it before closing
// the database.
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
	// Bounded: while the database is down the queue does not drain, and
	// the reader gets SERVICE_UNAVAILABLE rather than a wait without end.
	fctx, cancel := context.WithTimeout(ctx, auditFullWait)
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

// auditWriter inserts audit events in batches from a goroutine of its own:
// one INSERT per auditBatchSize events, or per auditFlushEvery when fewer
// come.
//
// It loses no event the database could take: an INSERT that fails because
// the database is unavailable (see models.Unavailable: down, restarting,
// frozen past AUTH_DB_TIMEOUT, out of disk) keeps its events queued, in
// order, and is retried with a backoff (auditRetryMin doubling up to
// auditRetryMax) until it succeeds, for as long as the outage lasts.
// Retrying is safe because an INSERT skips ids already written (see
// models.InsertAuditEvents). Only a row the database refuses for itself is
// given up, and logged.
//
// The queue is bounded by bytes (Config.AuditQueueBytes), not events: a
// long outage under load must not take the process's memory. Sign-ins
// are refused (refusing) once the queue holds auditHighWater of the
// budget, so the events of requests already under way and of other
// operations have the rest. When even the budget is full, add waits for
// room up to auditFullWait and then gives the event up, counted in
// Dropped and logged once per episode: no request blocks on the queue
// for longer than that.
type auditWriter struct {
	db     *gorm.DB
	log    *slog.Logger
	batch  int
	every  time.Duration
	budget int64

	mu      sync.Mutex
	queue   []models.AuditEvent // not yet written, oldest first
	bytes   int64               // estimated size of queue (see eventBytes)
	added   uint64              // events queued so far
	settled uint64              // of them, written or given up: the oldest `settled`
	// progress is closed (and replaced) whenever events settle, to wake
	// the flushes and the adds waiting for room.
	progress chan struct{}
	closed   bool
	failing  bool   // the last INSERT failed because the database is unavailable
	full     bool   // over auditHighWater: logged when it starts and ends
	dropping bool   // events given up in this episode of full: logged once
	dropped  uint64 // events given up because the budget was full
	// headTries counts the failed INSERTs of the event at the head of the
	// queue for an error not known to be an outage (the writer's
	// goroutine only).
	headTries int

	wake    chan struct{} // a batch is ready, or a flush waits
	stop    chan struct{} // closed by close
	abandon chan struct{} // closed when close's ctx ends first
	done    chan struct{} // closed when run returns
}

// The audit writer's retry and budget constants.
const (
	auditRetryMin = 100 * time.Millisecond
	auditRetryMax = 5 * time.Second
	// DefaultAuditQueueBytes is the audit queue's budget when
	// Config.AuditQueueBytes is 0: about 100,000 events of a typical size,
	// a minute of a few thousand sign-ins a second.
	DefaultAuditQueueBytes = 64 << 20
	auditHighWater         = 0.9
	auditFullWait          = 5 * time.Second
	// auditRefusedTries is how many times an event the database refuses
	// with an error not known to mean an outage is retried before it is
	// given up (and logged).
	auditRefusedTries = 3
)

func newAuditWriter(db *gorm.DB, log *slog.Logger, budget int64, batch int, every time.Duration) *auditWriter {
	w := &auditWriter{
		db: db, log: log, batch: batch, every: every, budget: budget,
		progress: make(chan struct{}),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		abandon:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	go w.run()
	return w
}

// eventBytes estimates the memory e takes while queued: its strings and
// a fixed part for the struct, the pointers and the time.
func eventBytes(e *models.AuditEvent) int64 {
	n := 256 + len(e.ID) + len(e.Type) + len(e.Outcome)
	for _, s := range []*string{e.Reason, e.UserID, e.ActorID, e.SessionID, e.IP, e.UserAgent, e.Detail} {
		if s != nil {
			n += len(*s)
		}
	}
	return int64(n)
}

// add queues e. While the budget is full it waits for room, up to
// auditFullWait, then gives e up (see auditWriter). Once the writer is
// closed, it writes e itself.
func (w *auditWriter) add(e models.AuditEvent) {
	size := eventBytes(&e)
	var timeout <-chan time.Time
	w.mu.Lock()
	if !w.closed && !w.full && w.overHighWater(w.bytes+size) {
		w.full = true
		w.log.Error("audit queue nearly full: the database has not taken audit events for a while; refusing sign-ins until it does",
			"queued", len(w.queue), "bytes", w.bytes, "budget", w.budget)
	}
	for !w.closed && w.bytes+size > w.budget && len(w.queue) > 0 {
		if timeout == nil {
			timeout = time.After(auditFullWait)
		}
		progress := w.progress
		w.mu.Unlock()
		select {
		case <-progress:
			w.mu.Lock()
			continue
		case <-timeout:
		}
		w.mu.Lock()
		if !w.closed && w.bytes+size > w.budget && len(w.queue) > 0 {
			// Said once per episode (and counted in Dropped), not per
			// event: a log line per lost event would be a flood of its
			// own.
			if w.dropped++; !w.dropping {
				w.dropping = true
				w.log.Error("audit queue full: giving up audit events until the database takes the queued ones",
					"queued", len(w.queue), "bytes", w.bytes, "budget", w.budget)
			}
			w.mu.Unlock()
			return
		}
	}
	if w.closed {
		w.mu.Unlock()
		if err := models.InsertAuditEvents(context.Background(), w.db, []models.AuditEvent{e}); err != nil {
			w.logLost(e, err)
		}
		return
	}
	w.queue = append(w.queue, e)
	w.bytes += size
	w.added++
	ready := len(w.queue) >= w.batch
	w.mu.Unlock()
	if ready {
		w.poke()
	}
}

// overHighWater reports whether a queue of n bytes must refuse sign-ins.
func (w *auditWriter) overHighWater(n int64) bool {
	return float64(n) >= auditHighWater*float64(w.budget)
}

// poke wakes the writer.
func (w *auditWriter) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// refusing reports whether sign-ins must be refused: the queue holds
// auditHighWater of its budget.
func (w *auditWriter) refusing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.overHighWater(w.bytes)
}

// AuditQueue is the state of the audit writer's queue, for metrics and
// readiness.
type AuditQueue struct {
	Events  int
	Bytes   int64
	Budget  int64
	Full    bool   // sign-ins are refused (the queue holds 90% of its budget)
	Failing bool   // the database refuses the writer's INSERTs
	Dropped uint64 // events given up because the budget was full, since start
}

func (w *auditWriter) state() AuditQueue {
	w.mu.Lock()
	defer w.mu.Unlock()
	return AuditQueue{
		Events: len(w.queue), Bytes: w.bytes, Budget: w.budget,
		Full:    w.overHighWater(w.bytes),
		Failing: w.failing, Dropped: w.dropped,
	}
}

// flush returns once every event queued before the call is written (or
// given up), or when ctx is done.
func (w *auditWriter) flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.added
	w.mu.Unlock()
	w.poke()
	for {
		w.mu.Lock()
		settled, progress := w.settled, w.progress
		w.mu.Unlock()
		if settled >= target {
			return nil
		}
		select {
		case <-progress:
		case <-w.done:
			return nil // closed: what it could write is written
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close stops the writer after it has written everything queued, retrying
// while the database is unavailable until ctx is done. What is still
// queued then is lost, and logged as such.
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
	}
	w.mu.Lock()
	select {
	case <-w.abandon:
	default:
		close(w.abandon)
	}
	w.mu.Unlock()
	<-w.done
	w.mu.Lock()
	n := len(w.queue)
	w.mu.Unlock()
	if n == 0 {
		return nil
	}
	w.log.Error("audit events lost at shutdown: the database did not take them in time", "events", n)
	return fmt.Errorf("%d audit events not written: %w", n, ctx.Err())
}

func (w *auditWriter) run() {
	defer close(w.done)
	t := time.NewTicker(w.every)
	defer t.Stop()
	stop := w.stop
	var backoff time.Duration
	for {
		if backoff > 0 {
			select {
			case <-time.After(backoff):
			case <-stop:
				stop = nil
			case <-w.abandon:
				return
			}
		} else if stop != nil {
			select {
			case <-w.wake:
			case <-t.C:
			case <-stop:
				stop = nil
			}
		}
		if w.writeQueued() {
			backoff = min(max(2*backoff, auditRetryMin), auditRetryMax)
			continue
		}
		backoff = 0
		if stop == nil {
			// Closed, and the queue was empty after it: no event can be
			// queued any more (add writes them itself).
			w.mu.Lock()
			empty := len(w.queue) == 0
			w.mu.Unlock()
			if empty {
				return
			}
		}
	}
}

// writeQueued writes the queue, a batch at a time, until it is empty or
// the database is unavailable; it reports the latter.
func (w *auditWriter) writeQueued() (unavailable bool) {
	for {
		w.mu.Lock()
		batch := slices.Clone(w.queue[:min(len(w.queue), w.batch)])
		w.mu.Unlock()
		if len(batch) == 0 {
			return false
		}
		n, err := w.write(batch)
		w.settle(n, err)
		if err != nil {
			return true
		}
	}
}

// write inserts batch in one statement. Should the database refuse it for
// another reason than being unavailable, it inserts the events one by one,
// so that one row the database refuses does not take the rest of its
// batch with it; a row still refused after auditRefusedTries tries is
// logged with what identifies it, the only trace left of it. It returns
// how many events of batch are settled, and the error that stopped it
// (retried after the backoff).
func (w *auditWriter) write(batch []models.AuditEvent) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), auditWriteTimeout)
	defer cancel()
	err := models.InsertAuditEvents(ctx, w.db, batch)
	switch {
	case err == nil:
		return len(batch), nil
	case models.Unavailable(err):
		return 0, err
	case len(batch) > 1:
		w.log.Warn("audit batch refused; writing its events one by one", "events", len(batch), "err", err)
	}
	for i := range batch {
		if len(batch) > 1 {
			err = models.InsertAuditEvents(ctx, w.db, batch[i:i+1])
		}
		switch {
		case err == nil:
		case models.Unavailable(err):
			return i, err
		case i > 0:
			// Retried at the head of the queue, below.
			return i, err
		case w.headTries < auditRefusedTries:
			// An error not known to mean an outage may still be one: the
			// event is retried a few times, with the backoff, before it
			// is given up.
			w.headTries++
			return 0, err
		default:
			w.logLost(batch[i], err)
		}
	}
	return len(batch), nil
}

// settle drops the n oldest events from the queue, written or given up,
// and notes whether the database was unavailable (err), logging when an
// outage starts and ends.
func (w *auditWriter) settle(n int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n > 0 {
		for i := range w.queue[:n] {
			w.bytes -= eventBytes(&w.queue[i])
		}
		clear(w.queue[:n]) // no strings kept alive by the backing array
		w.queue = w.queue[n:]
		if len(w.queue) == 0 {
			w.queue = nil
		}
		w.settled += uint64(n)
		w.headTries = 0
		close(w.progress)
		w.progress = make(chan struct{})
	}
	switch {
	case err != nil && !w.failing:
		w.failing = true
		w.log.Error("audit events not written: the database is unavailable; keeping them queued and retrying",
			"queued", len(w.queue), "err", err)
	case err == nil && w.failing:
		w.failing = false
		w.log.Info("audit events written again: the database is back", "queued", len(w.queue))
	}
	if w.full && !w.overHighWater(w.bytes) {
		w.full, w.dropping = false, false
		w.log.Info("audit queue has room again: sign-ins accepted", "queued", len(w.queue), "dropped_since_start", w.dropped)
	}
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
