package auth

import (
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/authql/authql/models"
)

// failTiming makes every failed login take as long as the slowest password
// verification the server does, so that the time of a failure says nothing
// about the email.
//
// Verifying costs what the stored hash's parameters say: the current
// AUTH_ARGON2_* for new hashes and for the dummy that unknown emails are
// checked against, but older parameters or bcrypt for accounts that have
// not logged in since AUTH_ARGON2_* changed or since they were imported.
// Without padding, an unknown email answers in the time of the current
// cost and such an account in the time of its own (measured: 300 ms against
// 54 ms), which tells an attacker which emails have accounts.
//
// The target is measured in-process, not configured: per cost class (an
// argon2id parameter set, a bcrypt cost), the median of its recent
// verifications, which follows the machine's speed and load and shrugs off
// a single slow one (a GC pause). A failed login pads to the largest of
// these, once per verification it did (a password typed in a non-NFC form
// is checked twice, for known and unknown emails alike). The padding
// sleeps after the hashing worker is given back: it holds no worker and no
// core, only the request.
//
// A class counts from its first verification on. The dummy's class, the
// current parameters, is measured when the service starts, and the classes
// of the hashes in the database just after (MeasureHashClasses): only an
// account of a class that appears later (a hash imported while the server
// runs) takes its own time at its first failed login.
type failTiming struct {
	mu      sync.Mutex
	classes map[string]*classTimes
	// wait sleeps until a failed login has taken total, of which spent
	// has passed, or until ctx ends; tests replace it to read the pads.
	wait func(ctx context.Context, total, spent time.Duration)
}

// maxHashClasses bounds the classes kept: a database holds a few parameter
// sets at most; past the bound new classes are not tracked.
const maxHashClasses = 32

// classSamples is how many recent verifications of a class are kept.
const classSamples = 7

type classTimes struct {
	recent [classSamples]time.Duration
	n      int // samples in recent
	next   int
	count  int // verifications recorded, for tests
}

func newFailTiming() *failTiming {
	return &failTiming{classes: map[string]*classTimes{}, wait: sleepRest}
}

func sleepRest(ctx context.Context, total, spent time.Duration) {
	if total <= spent {
		return
	}
	t := time.NewTimer(total - spent)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// record adds a verification of a hash of class that took d.
func (ft *failTiming) record(class string, d time.Duration) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	c := ft.classes[class]
	if c == nil {
		if len(ft.classes) >= maxHashClasses {
			return
		}
		c = &classTimes{}
		ft.classes[class] = c
	}
	c.recent[c.next] = d
	c.next = (c.next + 1) % classSamples
	c.n = min(c.n+1, classSamples)
	c.count++
}

// target is the time one verification of a failed login is padded to: the
// largest of the classes' recent medians.
func (ft *failTiming) target() time.Duration {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	var t time.Duration
	var buf [classSamples]time.Duration
	for _, c := range ft.classes {
		s := buf[:c.n]
		copy(s, c.recent[:c.n])
		slices.Sort(s)
		t = max(t, s[len(s)/2])
	}
	return t
}

// pad sleeps so that a failed login that did verifications hashes taking
// spent in all takes verifications times the target.
func (ft *failTiming) pad(ctx context.Context, verifications int, spent time.Duration) {
	ft.wait(ctx, time.Duration(verifications)*ft.target(), spent)
}

// hashClass is the cost class of a stored hash, which alone decides what
// verifying it costs, and a prefix that every hash of the class starts with
// (models.PasswordHashOutside finds the others with it). Anything
// unparsable is its own prefix: Verify refuses it quickly.
func hashClass(stored string) (class, prefix string) {
	switch {
	case strings.HasPrefix(stored, "$argon2id$"):
		// "$argon2id$v=19$m=…,t=…,p=…$salt$key": the parameters.
		parts := strings.SplitN(stored, "$", 5)
		if len(parts) == 5 {
			return "argon2id " + parts[2] + " " + parts[3], strings.Join(parts[:4], "$") + "$"
		}
	case len(stored) > 7 && strings.HasPrefix(stored, "$2") && stored[6] == '$':
		// "$2b$10$…": the cost.
		return "bcrypt " + stored[4:6], stored[:7]
	}
	return "malformed", stored
}

// MeasureHashClasses finds the cost classes of the password hashes in the
// database and verifies one hash of each against a random password, so
// that failed logins are padded to the slowest from the start, rather than
// from the first failure against an account of that class (see
// failTiming). serve runs it in the background at start; it costs a few
// queries, the last reading the users table once, and one verification
// per class.
func (s *Service) MeasureHashClasses(ctx context.Context) error {
	_, current := hashClass(s.hasher.dummy)
	prefixes := []string{current}
	for range 2 * maxHashClasses {
		h, err := models.PasswordHashOutside(ctx, s.db, prefixes)
		if err != nil || h == "" {
			return err
		}
		_, p := hashClass(h)
		prefixes = append(prefixes, p)
		if err := s.pool.do(ctx, func() { s.verify(h, rand.Text()) }); err != nil {
			return err
		}
	}
	return nil
}
