package auth

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/authql/authql/models"
)

// DefaultUserCacheSize bounds the user cache when nothing is configured:
// about 100 MB at the most for users with a few roles, and far less in
// practice, since only users active since their last change are held.
const DefaultUserCacheSize = 100_000

// userCache keeps users (with their roles) in memory, so that `me` and the
// role and permission checks of @auth cost no SQL in the steady state. Every
// write to a user drops its entry (forgetUser), here and, through the
// event bus, on every replica, so a role granted or removed applies to the
// very next request.
//
// A load from the database that overlaps a drop must not put the old row
// back: each drop advances gen, and a loaded user is stored only if gen did
// not move while it was being read.
type userCache struct {
	mu    sync.RWMutex
	users map[string]*cachedUser
	max   int
	gen   atomic.Uint64
}

// cachedUser is a user with its role names, kept ready for role checks,
// and whether the user has a second factor once a grant asked (the
// aal_max claim, see Service.aalMax): every change of factors publishes
// the user's change, which drops the entry.
type cachedUser struct {
	*models.User
	roles []string
	mfa   atomic.Int32 // mfaUnknown, mfaNone or mfaSome
}

// States of cachedUser.mfa.
const (
	mfaUnknown int32 = iota
	mfaNone
	mfaSome
)

func newUserCache(max int) *userCache {
	if max <= 0 {
		max = DefaultUserCacheSize
	}
	return &userCache{users: make(map[string]*cachedUser), max: max}
}

func (c *userCache) get(id string) *cachedUser {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.users[id]
}

// put stores u if no drop happened since gen was read.
func (c *userCache) put(u *cachedUser, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if len(c.users) >= c.max {
		// Evict an arbitrary entry (Go's map order is random): cheaper
		// than keeping recency on every read, and an evicted user costs
		// one query at its next request.
		for k := range c.users {
			delete(c.users, k)
			break
		}
	}
	c.users[u.ID] = u
}

func (c *userCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	delete(c.users, id)
}

func (c *userCache) forgetAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	clear(c.users)
}

// user returns the user with the id and its roles, from the cache or else
// from the database. The result is shared: callers must not modify it. It
// returns Unauthenticated if the user no longer exists.
func (s *Service) user(ctx context.Context, id string) (*cachedUser, error) {
	if u := s.users.get(id); u != nil {
		return u, nil
	}
	gen := s.users.gen.Load()
	u, err := models.UserByID(ctx, s.db, id)
	if models.ErrorCode(err) == models.NotFound {
		return nil, errAccountGone
	} else if err != nil {
		return nil, err
	}
	cu := &cachedUser{User: u, roles: u.RoleNames()}
	s.users.put(cu, gen)
	return cu, nil
}

// forgetUser drops a user from the cache after a write to it.
func (s *Service) forgetUser(id string) { s.users.forget(id) }

// forgetAllUsers drops every cached user, when writes may have been missed.
func (s *Service) forgetAllUsers() { s.users.forgetAll() }
