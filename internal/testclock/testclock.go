// Package testclock is the settable clock that tests inject in place of
// time.Now, so that they move time on instead of sleeping. It imports
// nothing of authql's, so that the tests of every package can use it: those
// inside auth and auth/keys too, which cannot import internal/authtest
// (it imports auth).
package testclock

import (
	"sync"
	"time"
)

// Clock is a settable clock, safe for concurrent use (a test's requests
// read it while the test moves it on).
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock set to t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
