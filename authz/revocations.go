package authz

import (
	"slices"
	"sync"
	"time"
)

// revocations is what the feed has said about tokens already issued:
// sessions revoked, accounts disabled and roles changed, each remembered
// for keep after it happened. Tokens live at most Config.MaxTokenLife
// (Verify refuses longer ones), so a token issued before the event has
// expired by then and the entry can go: memory stays bounded by the rate
// of events.
type revocations struct {
	keep time.Duration

	mu       sync.RWMutex
	sessions map[string]time.Time // session id → revoked at
	disabled map[string]time.Time // user id → disabled at (the latest)
	roles    map[string]roleChange
	// watchers are closed when their session is revoked (sockets).
	watchers  map[string][]chan struct{}
	lastPrune time.Time
}

// roleChange is a user's roles as of at.
type roleChange struct {
	at    time.Time
	roles []string
}

func newRevocations(keep time.Duration) *revocations {
	return &revocations{
		keep:     keep,
		sessions: map[string]time.Time{},
		disabled: map[string]time.Time{},
		roles:    map[string]roleChange{},
		watchers: map[string][]chan struct{}{},
	}
}

// refused reports whether a token of the session and user, issued at iat,
// is refused: its session was revoked, or its user disabled at or after
// iat. iat has whole seconds and the events' times do not, so a token
// issued in the second of the event counts as issued before it: the
// conservative side.
func (rv *revocations) refused(sessionID, userID string, iat time.Time) bool {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	if _, ok := rv.sessions[sessionID]; ok {
		return true
	}
	at, ok := rv.disabled[userID]
	return ok && !iat.After(at)
}

// rolesSince returns the user's roles as of the last ROLES_CHANGED at or
// after iat, when there is one: the token's roles and scope are stale.
func (rv *revocations) rolesSince(userID string, iat time.Time) ([]string, bool) {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	rc, ok := rv.roles[userID]
	if !ok || iat.After(rc.at) {
		return nil, false
	}
	return rc.roles, true
}

// revokeSession records a revoked session and ends its watchers.
func (rv *revocations) revokeSession(sessionID string, at time.Time) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.sessions[sessionID] = at
	for _, ch := range rv.watchers[sessionID] {
		close(ch)
	}
	delete(rv.watchers, sessionID)
}

func (rv *revocations) disable(userID string, at time.Time) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if at.After(rv.disabled[userID]) {
		rv.disabled[userID] = at
	}
}

func (rv *revocations) setRoles(userID string, at time.Time, roles []string) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if at.After(rv.roles[userID].at) {
		rv.roles[userID] = roleChange{at: at, roles: slices.Clone(roles)}
	}
}

// watch returns a channel closed when the session is revoked (at once if
// it is already), and a function that stops the watch.
func (rv *revocations) watch(sessionID string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if _, ok := rv.sessions[sessionID]; ok {
		close(ch)
		return ch, func() {}
	}
	rv.watchers[sessionID] = append(rv.watchers[sessionID], ch)
	return ch, func() {
		rv.mu.Lock()
		defer rv.mu.Unlock()
		ws := rv.watchers[sessionID]
		if i := slices.Index(ws, ch); i >= 0 {
			ws = slices.Delete(ws, i, i+1)
		}
		if len(ws) == 0 {
			delete(rv.watchers, sessionID)
		} else {
			rv.watchers[sessionID] = ws
		}
	}
}

// prune forgets the events older than keep at now; at most once a minute,
// since it walks every entry.
func (rv *revocations) prune(now time.Time) {
	cutoff := now.Add(-rv.keep)
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if now.Sub(rv.lastPrune) < time.Minute && now.After(rv.lastPrune) {
		return
	}
	rv.lastPrune = now
	for id, at := range rv.sessions {
		if at.Before(cutoff) {
			delete(rv.sessions, id)
		}
	}
	for id, at := range rv.disabled {
		if at.Before(cutoff) {
			delete(rv.disabled, id)
		}
	}
	for id, rc := range rv.roles {
		if rc.at.Before(cutoff) {
			delete(rv.roles, id)
		}
	}
}

// size is how many entries are kept (for tests).
func (rv *revocations) size() int {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	return len(rv.sessions) + len(rv.disabled) + len(rv.roles)
}
