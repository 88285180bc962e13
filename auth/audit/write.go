package audit

import (
	"context"
	"slices"
	"time"

	"github.com/authql/authql/models"
)

// run is the writer's goroutine: it writes the queue whenever a batch is
// ready, a flush waits or the interval passes, backing off while the
// database is unavailable, until Close.
func (w *Writer) run() {
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
			backoff = min(max(2*backoff, retryMin), retryMax)
			continue
		}
		backoff = 0
		if stop == nil {
			// Closed, and the queue was empty after it: no event can be
			// queued any more (Record writes them itself).
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
func (w *Writer) writeQueued() (unavailable bool) {
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
// batch with it; a row still refused after refusedTries tries is logged
// with what identifies it, the only trace left of it. It returns how many
// events of batch are settled, and the error that stopped it (retried
// after the backoff).
func (w *Writer) write(batch []models.AuditEvent) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	err := models.InsertAuditEvents(ctx, w.db, batch)
	switch {
	case err == nil:
		w.written(batch)
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
			w.written(batch[i : i+1])
		case models.Unavailable(err):
			return i, err
		case i > 0:
			// Retried at the head of the queue, below.
			return i, err
		case w.headTries < refusedTries:
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
func (w *Writer) settle(n int, err error) {
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

func (w *Writer) logLost(e models.AuditEvent, err error) {
	w.log.Error("audit event not recorded", "type", e.Type, "outcome", e.Outcome, "at", e.At,
		"user", deref(e.UserID), "session", deref(e.SessionID), "ip", deref(e.IP), "err", err)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
