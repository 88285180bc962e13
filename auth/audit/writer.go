// Package audit writes audit events to the database in batches, from a
// goroutine of its own, so that the operation an event records does not
// pay for a commit of its own. The queue is bounded by bytes, survives
// outages of the database, and is written out at shutdown.
package audit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/models"
)

// The writer's sizes. A batch of 256 events is one INSERT of about 2,800
// parameters, well under both databases' limits; 150 ms bounds how long an
// event waits for a batch to fill.
const (
	batchSize  = 256
	flushEvery = 150 * time.Millisecond
	// writeTimeout bounds one INSERT (AUTH_DB_TIMEOUT bounds it too): past
	// it the batch is retried.
	writeTimeout = 30 * time.Second
)

// The writer's retry and budget constants.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
	// DefaultQueueBytes is the queue's budget when NewWriter is given 0:
	// about 100,000 events of a typical size, a minute of a few thousand
	// sign-ins a second.
	DefaultQueueBytes = 64 << 20
	highWater         = 0.9
	// MaxWait is the longest Record waits for room in a full queue; a
	// reader that flushes the queue before reading bounds its wait alike.
	MaxWait = 5 * time.Second
	// refusedTries is how many times an event the database refuses with
	// an error not known to mean an outage is retried before it is given
	// up (and logged).
	refusedTries = 3
)

// ErrFull refuses sign-ins while the queue is nearly full (see Room): a
// sign-in that could not be recorded must not happen at all.
var ErrFull = &models.Error{
	Code:       models.ServiceUnavailable,
	Message:    "sign-ins are paused while the audit log catches up; retry later",
	RetryAfter: retryMax,
}

// Writer inserts audit events in batches from a goroutine of its own: one
// INSERT per 256 events, or per 150 ms when fewer come.
//
// It loses no event the database could take: an INSERT that fails because
// the database is unavailable (see models.Unavailable: down, restarting,
// frozen past AUTH_DB_TIMEOUT, out of disk) keeps its events queued, in
// order, and is retried with a backoff (100 ms doubling up to 5 s) until
// it succeeds, for as long as the outage lasts. Retrying is safe because
// an INSERT skips ids already written (see models.InsertAuditEvents). Only
// a row the database refuses for itself is given up, and logged.
//
// The queue is bounded by bytes (the budget given to NewWriter), not
// events: a long outage under load must not take the process's memory.
// Sign-ins are refused (Room) once the queue holds 90% of the budget, so
// the events of requests already under way and of other operations have
// the rest. When even the budget is full, Record waits for room up to
// MaxWait and then gives the event up, counted in Queue.Dropped and logged
// once per episode: no request blocks on the queue for longer than that.
type Writer struct {
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
	full     bool   // over highWater: logged when it starts and ends
	dropping bool   // events given up in this episode of full: logged once
	dropped  uint64 // events given up because the budget was full
	// headTries counts the failed INSERTs of the event at the head of the
	// queue for an error not known to be an outage (the writer's
	// goroutine only).
	headTries int

	// onWritten, when set, is given each batch once written (see
	// OnWritten).
	onWritten func([]models.AuditEvent)

	wake    chan struct{} // a batch is ready, or a flush waits
	stop    chan struct{} // closed by Close
	abandon chan struct{} // closed when Close's ctx ends first
	done    chan struct{} // closed when run returns
}

// NewWriter starts a Writer inserting into db, with a queue of at most
// budget bytes (0: DefaultQueueBytes). Close stops it.
func NewWriter(db *gorm.DB, log *slog.Logger, budget int64) *Writer {
	if budget <= 0 {
		budget = DefaultQueueBytes
	}
	return newWriter(db, log, budget, batchSize, flushEvery)
}

func newWriter(db *gorm.DB, log *slog.Logger, budget int64, batch int, every time.Duration) *Writer {
	w := &Writer{
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

// Clean makes s storable in a PostgreSQL text column of at most max bytes:
// valid UTF-8 without NUL, cut at a character boundary. A User-Agent may
// hold any byte a client sends; one row PostgreSQL refused would fail the
// whole batch it is in.
func Clean(s string, max int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) <= max {
		return s
	}
	s = s[:max]
	// Drop a character cut in two.
	return strings.ToValidUTF8(s, "")
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

// OnWritten sets f to be called with the events of each INSERT that
// succeeded, in the writer's goroutine (or Record's, once closed), after
// it committed: f must not block. An event written again by a retry may
// be given again.
func (w *Writer) OnWritten(f func([]models.AuditEvent)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.onWritten = f
}

// written hands events to the OnWritten function, if any.
func (w *Writer) written(events []models.AuditEvent) {
	w.mu.Lock()
	f := w.onWritten
	w.mu.Unlock()
	if f != nil && len(events) > 0 {
		f(events)
	}
}

// Record queues e. While the budget is full it waits for room, up to
// MaxWait, then gives e up (see Writer). Once the writer is closed, it
// writes e itself.
func (w *Writer) Record(e models.AuditEvent) {
	size := eventBytes(&e)
	w.mu.Lock()
	if !w.closed && !w.full && w.overHighWater(w.bytes+size) {
		w.full = true
		w.log.Error("audit queue nearly full: the database has not taken audit events for a while; refusing sign-ins until it does",
			"queued", len(w.queue), "bytes", w.bytes, "budget", w.budget)
	}
	if !w.waitRoomLocked(size) {
		w.mu.Unlock()
		return
	}
	if w.closed {
		w.mu.Unlock()
		if err := models.InsertAuditEvents(context.Background(), w.db, []models.AuditEvent{e}); err != nil {
			w.logLost(e, err)
		} else {
			w.written([]models.AuditEvent{e})
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

// waitRoomLocked waits, with w.mu held (and released while waiting), until
// the queue has room for an event of size bytes or the writer is closed.
// Past MaxWait it gives the event up, counts it in dropped and reports
// false.
func (w *Writer) waitRoomLocked(size int64) bool {
	var timeout <-chan time.Time
	for !w.closed && w.bytes+size > w.budget && len(w.queue) > 0 {
		if timeout == nil {
			timeout = time.After(MaxWait)
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
			return false
		}
	}
	return true
}

// overHighWater reports whether a queue of n bytes must refuse sign-ins.
func (w *Writer) overHighWater(n int64) bool {
	return float64(n) >= highWater*float64(w.budget)
}

// poke wakes the writer.
func (w *Writer) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Room returns ErrFull when the queue has no room left for the events of
// sign-ins (it holds 90% of its budget, see Writer), nil otherwise.
func (w *Writer) Room() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.overHighWater(w.bytes) {
		return ErrFull
	}
	return nil
}

// Queue is the state of the writer's queue, for metrics and readiness.
type Queue struct {
	Events  int
	Bytes   int64
	Budget  int64
	Full    bool   // sign-ins are refused (the queue holds 90% of its budget)
	Failing bool   // the database refuses the writer's INSERTs
	Dropped uint64 // events given up because the budget was full, since start
}

// State returns the state of the queue.
func (w *Writer) State() Queue {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Queue{
		Events: len(w.queue), Bytes: w.bytes, Budget: w.budget,
		Full:    w.overHighWater(w.bytes),
		Failing: w.failing, Dropped: w.dropped,
	}
}

// Flush returns once every event queued before the call is written (or
// given up), or when ctx is done.
func (w *Writer) Flush(ctx context.Context) error {
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

// Close stops the writer after it has written everything queued, retrying
// while the database is unavailable until ctx is done. What is still
// queued then is lost, logged as such, and counted in the error. Events
// recorded after Close are written at once, one statement each.
func (w *Writer) Close(ctx context.Context) error {
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
