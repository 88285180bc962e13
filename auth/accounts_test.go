package auth

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/internal/testclock"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// accountEnv is a Service on a fresh database with a settable clock and,
// when mailing, a Composer (no sender: the tests read the outbox).
type accountEnv struct {
	s      *Service
	c      *testclock.Clock
	ctx    context.Context
	queued atomic.Int32 // calls of Config.MailQueued
}

func newAccountEnv(t *testing.T, dsn string, mailing bool) *accountEnv {
	t.Helper()
	e := &accountEnv{c: testclock.New(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)), ctx: context.Background()}
	cfg := Config{
		Issuer: "authql", Audience: "authql", AccessTTL: 15 * time.Minute, RefreshTTL: 720 * time.Hour, ReuseInterval: 10 * time.Second,
		Signup: true, Argon2: Argon2Params{Memory: 64, Time: 1, Threads: 1}, Now: e.c.Now,
		MailQueued: func() { e.queued.Add(1) },
	}
	if mailing {
		m, err := mail.NewComposer(mail.Config{From: "authql <no-reply@authql.test>", AppURL: "http://app.test", Now: e.c.Now})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Mail = m
	}
	s, err := NewService(e.ctx, testdb.Open(t, dsn), []byte(strings.Repeat("k", 32)), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	e.s = s
	return e
}

func (e *accountEnv) principal(t *testing.T, g *Grant) *Principal {
	t.Helper()
	p, err := e.s.Authenticate(e.ctx, g.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// outbox returns the mails queued for the user.
func (e *accountEnv) outbox(t *testing.T, userID string) []models.OutboxMail {
	t.Helper()
	var mails []models.OutboxMail
	if err := e.s.db.Where("user_id = ?", userID).Order("created_at, id").Find(&mails).Error; err != nil {
		t.Fatal(err)
	}
	return mails
}

// TestChangePasswordNotice: a change queues the "password changed" notice
// to the account's address in its transaction and wakes the sender; a
// refused change queues nothing; without mail configured the change goes
// ahead unmailed.
func TestChangePasswordNotice(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newAccountEnv(t, dsn, true)
		g, err := e.s.Register(e.ctx, "ada@example.com", "password1")
		if err != nil {
			t.Fatal(err)
		}
		p := e.principal(t, g)
		if _, err := e.s.ChangePassword(e.ctx, p, "wrong-password", "new-password", true); models.ErrorCode(err) != models.BadUserInput {
			t.Fatalf("wrong current password: %v", err)
		}
		if n := len(e.outbox(t, g.User.ID)); n != 0 || e.queued.Load() != 0 {
			t.Fatalf("a refused change queued %d mails and woke the sender %d times", n, e.queued.Load())
		}
		if _, err := e.s.ChangePassword(e.ctx, p, "password1", "new-password", true); err != nil {
			t.Fatal(err)
		}
		mails := e.outbox(t, g.User.ID)
		if len(mails) != 1 || e.queued.Load() != 1 {
			t.Fatalf("%d mails queued, sender woken %d times; want 1 and 1", len(mails), e.queued.Load())
		}
		m := mails[0]
		if m.Kind != string(mail.KindPasswordChanged) || m.To != "ada@example.com" || m.Status != models.MailQueued ||
			!strings.Contains(m.Message, "Subject: Your password was changed") || !strings.Contains(m.Message, "http://app.test/forgo") {
			t.Errorf("queued %s to %s (%s):\n%s", m.Kind, m.To, m.Status, m.Message)
		}

		plain := newAccountEnv(t, dsn, false)
		g, err = plain.s.Register(plain.ctx, "bob@example.com", "password1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := plain.s.ChangePassword(plain.ctx, plain.principal(t, g), "password1", "new-password", true); err != nil {
			t.Fatal(err)
		}
		if n := len(plain.outbox(t, g.User.ID)); n != 0 || plain.queued.Load() != 0 {
			t.Errorf("without mail: %d mails queued, sender woken %d times", n, plain.queued.Load())
		}
		if _, err := plain.s.Login(plain.ctx, "bob@example.com", "new-password"); err != nil {
			t.Errorf("login with the new password: %v", err)
		}
	})
}

// TestChangePasswordConcurrent: two sessions of one user changing the
// password at once, each with the right current password: one wins, the
// other is refused (its check was of a password no longer stored), and
// the winner's password is the one that works.
func TestChangePasswordConcurrent(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newAccountEnv(t, dsn, false)
		current := "password1"
		if _, err := e.s.Register(e.ctx, "ada@example.com", current); err != nil {
			t.Fatal(err)
		}
		for round := range 10 {
			var ps [2]*Principal
			for i := range ps {
				l, err := e.s.Login(e.ctx, "ada@example.com", current)
				if err != nil {
					t.Fatal(err)
				}
				ps[i] = e.principal(t, l)
			}
			next := [2]string{"first-password-" + string(rune('a'+round)), "second-password-" + string(rune('a'+round))}
			var errs [2]error
			var wg sync.WaitGroup
			for i := range ps {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Two devices: one client's share of the hash pool
					// is one hash at a time.
					ctx := context.WithValue(e.ctx, clientKey, Client{IP: "192.0.2." + string(rune('1'+i))})
					_, errs[i] = e.s.ChangePassword(ctx, ps[i], current, next[i], true)
				}()
			}
			wg.Wait()
			won := -1
			for i, err := range errs {
				switch {
				case err == nil && won < 0:
					won = i
				case err == nil:
					t.Fatalf("round %d: both changes succeeded", round)
				case models.ErrorCode(err) != models.BadUserInput:
					t.Fatalf("round %d: the loser got %v, want BAD_USER_INPUT", round, err)
				}
			}
			if won < 0 {
				t.Fatalf("round %d: both refused: %v", round, errs)
			}
			if _, err := e.s.Login(e.ctx, "ada@example.com", next[1-won]); models.ErrorCode(err) != models.Unauthenticated {
				t.Fatalf("round %d: the loser's password: %v, want refused", round, err)
			}
			current = next[won]
		}
	})
}

// TestAccountChangesRaceRefreshes: a change of password or a deletion
// while the session's refresh tokens are being rotated in a loop: the
// change succeeds, and afterwards no token of the rotating chain works
// (the rotation's token committed meanwhile is deleted too).
func TestAccountChangesRaceRefreshes(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newAccountEnv(t, dsn, false)
		restarted := 0
		for round := range 20 {
			email := "user" + string(rune('a'+round)) + "@example.com"
			g, err := e.s.Register(e.ctx, email, "password1")
			if err != nil {
				t.Fatal(err)
			}
			p := e.principal(t, g)
			stop := make(chan struct{})
			last := make(chan string)
			go func() {
				token := g.RefreshToken
				defer func() { last <- token }()
				for {
					select {
					case <-stop:
						return
					default:
					}
					next, err := e.s.Refresh(e.ctx, token)
					if err != nil {
						return
					}
					token = next.RefreshToken
				}
			}()
			time.Sleep(time.Millisecond)
			var fresh *Grant
			if round%2 == 0 {
				fresh, err = e.s.ChangePassword(e.ctx, p, "password1", "new-password", true)
			} else {
				err = e.s.DeleteAccount(e.ctx, p, "password1")
			}
			close(stop)
			token := <-last
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if _, err := e.s.Refresh(e.ctx, token); models.ErrorCode(err) != models.Unauthenticated {
				t.Fatalf("round %d: the rotating chain's last token after the change: %v, want refused", round, err)
			}
			var live int64
			if fresh == nil {
				e.s.db.Model(&models.RefreshToken{}).Where("session_id IN (SELECT id FROM sessions WHERE user_id = ?)", g.User.ID).Count(&live)
				if live != 0 {
					t.Fatalf("round %d: %d refresh tokens left of the deleted user", round, live)
				}
				continue
			}
			if fresh.SessionID != p.SessionID {
				restarted++
			}
			e.s.db.Model(&models.RefreshToken{}).Where("session_id = ? AND rotated_at IS NULL", fresh.SessionID).Count(&live)
			if live != 1 {
				t.Fatalf("round %d: %d unrotated refresh tokens of the session, want the new one", round, live)
			}
			if _, err := e.s.Refresh(e.ctx, fresh.RefreshToken); err != nil {
				t.Fatalf("round %d: the new token: %v", round, err)
			}
		}
		t.Logf("%d of 10 password changes raced a refresh and restarted the session", restarted)
	})
}
