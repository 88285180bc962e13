package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/models"
)

// Why a stream ended: the outcome of its log line.
const (
	endClient   = "CLIENT_CLOSED"
	endExpired  = models.ReasonTokenExpired
	endRevoked  = models.ReasonTokenRevoked
	endRefused  = models.Forbidden
	endLagged   = "LAGGED"
	endShutdown = "SHUTDOWN"
	endUnsynced = models.ServiceUnavailable
	endWrite    = "WRITE_FAILED"
	endReplay   = "REPLAY_BOUND"
	endInternal = models.Internal
)

// readyEvent marks the end of the replay: what follows is live. No id,
// so that it moves no reader's Last-Event-ID.
const readyEvent = "event: ready\ndata: {}\n\n"

// stream is one open GET /events.
type stream struct {
	f   *feed
	w   http.ResponseWriter
	rc  *http.ResponseController
	p   *auth.Principal
	sub *auth.LiveSub
	// sent are the ids replayed, ascending: a live event delivered after
	// the replay read it is not sent twice. At most eventsMaxReplay.
	sent []int64
}

// feedEvent is the data of one event.
type feedEvent struct {
	ID        int64           `json:"id"`
	Type      string          `json:"type"`
	At        string          `json:"at"`
	UserID    string          `json:"userId"`
	SessionID *string         `json:"sessionId,omitempty"`
	Roles     json.RawMessage `json:"roles,omitempty"`
}

// serve writes the stream until it ends, and returns why it ended.
func (s *stream) serve(r *http.Request, after int64, resume bool) string {
	// The server's timeouts are for requests, not streams: the read
	// deadline would cancel the request once it passed (the server's
	// background read fails), and the write deadline is moved on before
	// each write instead (see write).
	if err := s.rc.SetReadDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return endWrite
	}
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events on at once
	s.w.WriteHeader(http.StatusOK)
	if err := s.write(nil); err != nil {
		return endWrite
	}
	if resume {
		if end := s.replay(r, after); end != "" {
			return end
		}
	}
	// The reader is caught up: tell it, so that it can count itself in
	// sync (a stream that ends at the replay bound never sends this).
	if s.write([]byte(readyEvent)) != nil {
		return endWrite
	}
	return s.live(r)
}

// replay sends the events after the client's Last-Event-ID, in pages,
// then those that arrived live meanwhile and were not among them.
func (s *stream) replay(r *http.Request, after int64) string {
	var pending []models.LiveEvent
	late, err := s.f.svc.LiveEventsCommittedLate(r.Context(), after, eventsReplayPage)
	if err != nil {
		s.f.log.ErrorContext(r.Context(), "events: replay failed", "err", err)
		return endInternal
	}
	for _, e := range late {
		if s.write(s.encode(e)) != nil {
			return endWrite
		}
		s.sent = append(s.sent, e.ID)
	}
	for {
		page, err := s.f.svc.LiveEventsAfter(r.Context(), after, eventsReplayPage)
		if err != nil {
			s.f.log.ErrorContext(r.Context(), "events: replay failed", "err", err)
			return endInternal
		}
		for _, e := range page {
			// Replayed events tell of the past: an account disabled then
			// enabled again, or the permission taken and given back,
			// must not end every resumption at the same event.
			if s.write(s.encode(e)) != nil {
				return endWrite
			}
			s.sent = append(s.sent, e.ID)
			after = e.ID
		}
		// Live events wait in the subscription's small buffer: taken
		// out between pages, so that a long replay does not lag.
		for drained := false; !drained; {
			select {
			case e, ok := <-s.sub.C:
				if !ok || len(pending) >= eventsMaxReplay {
					return endLagged
				}
				pending = append(pending, e)
			default:
				drained = true
			}
		}
		if len(s.sent) >= eventsMaxReplay {
			// The client resumes from the last id sent, on a new stream.
			return endReplay
		}
		if len(page) < eventsReplayPage {
			break
		}
	}
	for _, e := range pending {
		if s.replayed(e.ID) {
			continue
		}
		if end := s.send(e); end != "" {
			return end
		}
	}
	return ""
}

func (s *stream) replayed(id int64) bool {
	_, found := slices.BinarySearch(s.sent, id)
	return found
}

// live sends events as they come, and a heartbeat, until the stream ends.
func (s *stream) live(r *http.Request) string {
	ctx := r.Context()
	beat := time.NewTicker(s.f.heartbeat)
	defer beat.Stop()
	expiry := time.NewTimer(s.untilExpiry())
	defer expiry.Stop()
	for {
		select {
		case <-ctx.Done():
			return endClient
		case <-s.f.closing:
			return endShutdown
		case e, ok := <-s.sub.C:
			if !ok {
				return endLagged // the client resumes from its last id
			}
			if s.replayed(e.ID) {
				continue
			}
			if end := s.send(e); end != "" {
				return end
			}
		case <-expiry.C:
			if s.untilExpiry() <= 0 {
				return endExpired
			}
			expiry.Reset(s.untilExpiry())
		case <-beat.C:
			if end := s.check(r); end != "" {
				return end
			}
			if s.write([]byte(": ping\n\n")) != nil {
				return endWrite
			}
		}
	}
}

// untilExpiry is the time left to the stream's access token by the
// service's clock; the heartbeat checks it too (see check), for a clock
// that jumps.
func (s *stream) untilExpiry() time.Duration {
	return s.p.ExpiresAt.Sub(s.f.svc.Now())
}

// check ends a stream whose token expired (the client reconnects with a
// fresh one and its Last-Event-ID), whose user lost the permission or
// their account, or whose replica cannot know the other replicas'
// events any more.
func (s *stream) check(r *http.Request) string {
	if s.untilExpiry() <= 0 {
		return endExpired
	}
	if s.f.svc.SyncRefusing() {
		return endUnsynced
	}
	if err := s.f.svc.Authorize(r.Context(), auth.Rule{Permission: models.PermEventsRead}); err != nil {
		if models.ErrorCode(err) == models.Forbidden {
			return endRefused
		}
		return endRevoked
	}
	return ""
}

// encode is e as the stream sends it.
func (s *stream) encode(e models.LiveEvent) []byte {
	// Nothing in feedEvent can fail to encode.
	data, _ := json.Marshal(feedEvent{
		ID: e.ID, Type: e.Type, At: e.At.UTC().Format(time.RFC3339Nano), UserID: e.UserID,
		SessionID: e.SessionID, Roles: rolesJSON(e.Roles),
	})
	b := make([]byte, 0, len(data)+64)
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, e.ID, 10)
	b = append(b, "\nevent: "...)
	b = append(b, e.Type...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// send writes e, an event of now, and says whether it ends the stream:
// the revocation of its own session, its account disabled, or its
// permission gone.
func (s *stream) send(e models.LiveEvent) string {
	if s.write(s.encode(e)) != nil {
		return endWrite
	}
	if e.UserID != s.p.UserID {
		return ""
	}
	switch e.Type {
	case models.LiveSessionRevoked:
		if e.SessionID != nil && *e.SessionID == s.p.SessionID {
			return endRevoked
		}
	case models.LiveAccountDisabled:
		return endRevoked
	case models.LiveRolesChanged:
		// The event carries the roles now: no look-up that could
		// race the change's own invalidation of the user cache.
		if !s.f.svc.RolesGrant(e.RoleList(), models.PermEventsRead) {
			return endRefused
		}
	}
	return ""
}

// rolesJSON is the stored JSON array of roles, or nil for none.
func rolesJSON(roles *string) json.RawMessage {
	if roles == nil {
		return nil
	}
	return json.RawMessage(*roles)
}

// write sends b (nothing but the headers when b is nil) and flushes it,
// under a deadline of its own: the server's WriteTimeout, counted from
// the request's start, would cut every stream after it.
func (s *stream) write(b []byte) error {
	if err := s.rc.SetWriteDeadline(time.Now().Add(eventsWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if len(b) > 0 {
		if _, err := s.w.Write(b); err != nil {
			return err
		}
	}
	return s.rc.Flush()
}
