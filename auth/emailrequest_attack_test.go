package auth

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// Attacks on the mailed requests at the service level: codes guessed in
// parallel past the limits, and a reset for an unknown email told apart
// from a known one. The same attacks over HTTP: httpapi/accounts_mail_test.go.

// wrongCode returns a well-formed code other than right, the i-th of them.
func wrongCode(right string, i int) string {
	for {
		c := fmt.Sprintf("%08d", i)
		c = strings.NewReplacer("0", "A", "1", "B").Replace(c)
		if c != right {
			return c
		}
		i += 1000
	}
}

// guessAll makes n guesses at once, the i-th at request ids[i%len(ids)],
// and returns the error codes they got.
func (e *mailEnv) guessAll(ids []string, right map[string]string, n int) map[string]int {
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := ids[i%len(ids)]
			err := e.s.ResetPassword(e.ctx, Proof{RequestID: id, Code: wrongCode(right[id], i)}, "new password")
			mu.Lock()
			got[models.ErrorCode(err)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return got
}

// checked is how many codes the requests took (failed_codes summed).
func (e *mailEnv) checked(t *testing.T, ids []string) int {
	t.Helper()
	var n int
	if err := e.db.Model(&models.EmailRequest{}).Where("id IN ?", ids).Select("COALESCE(SUM(failed_codes), 0)").Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCodeGuessesInParallel: concurrent wrong codes cannot slip past the
// bound of a request (5) or of an account (10 an hour across its
// requests), and past them the right code fails too.
func TestCodeGuessesInParallel(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Run("PerRequest", func(t *testing.T) {
			e := newMailEnv(t, dsn, withLimits(Limits{CodeAccount: Rate{N: 1000, Per: time.Hour}}))
			g := e.register(t)
			r, m := e.reset(t, g.User.Email)
			got := e.guessAll([]string{r.ID}, map[string]string{r.ID: m.code()}, 24)
			if got[models.BadUserInput] != 24 {
				t.Errorf("answers %v, want 24 BAD_USER_INPUT", got)
			}
			if n := e.checked(t, []string{r.ID}); n != MaxCodeFailures {
				t.Errorf("%d codes checked, want %d", n, MaxCodeFailures)
			}
			wantCode(t, e.s.ResetPassword(e.ctx, Proof{RequestID: r.ID, Code: m.code()}, "new password"), models.BadUserInput, "the right code of a dead request")
			if err := e.s.ResetPassword(e.ctx, Proof{Token: m.token()}, "new password"); err != nil {
				// The link is not a guess: a request's death by wrong
				// codes leaves its 256-bit token working.
				t.Errorf("the link of a request dead by codes: %v", err)
			}
		})
		t.Run("PerAccount", func(t *testing.T) {
			// Requests that outlive the account's hour, to try the right
			// code after it.
			e := newMailEnv(t, dsn, withLimits(Limits{CodeAccount: Rate{N: 10, Per: time.Hour}}), func(c *Config) { c.ResetTTL = 2 * time.Hour })
			e.n = 10 // the same database as PerRequest's
			g := e.register(t)
			ids, right := []string{}, map[string]string{}
			for range 4 {
				r, m := e.reset(t, g.User.Email)
				ids, right[r.ID] = append(ids, r.ID), m.code()
			}
			got := e.guessAll(ids[:3], right, 30)
			if got[models.RateLimited] == 0 || got[models.BadUserInput]+got[models.RateLimited] != 30 {
				t.Errorf("answers %v, want BAD_USER_INPUT and RATE_LIMITED only, some RATE_LIMITED", got)
			}
			if n := e.checked(t, ids); n > 10 {
				t.Fatalf("%d codes checked in parallel, want at most 10", n)
			}
			// Whatever the race gave back, in sequence the account takes
			// exactly 10 wrong codes in the hour.
			for i := 0; e.checked(t, ids) < 10 && i < 20; i++ {
				e.s.ResetPassword(e.ctx, Proof{RequestID: ids[3], Code: wrongCode(right[ids[3]], 100+i)}, "new password")
			}
			err := e.s.ResetPassword(e.ctx, Proof{RequestID: ids[3], Code: right[ids[3]]}, "new password")
			wantCode(t, err, models.RateLimited, "the right code past the account's limit")
			if c := models.Coded(err); c == nil || c.RetryAfter <= 0 {
				t.Errorf("RATE_LIMITED without retryAfter: %+v", err)
			}
			if n := e.checked(t, ids); n != 10 {
				t.Errorf("%d codes checked, want 10", n)
			}
			e.c.Advance(time.Hour)
			if err := e.s.ResetPassword(e.ctx, Proof{RequestID: ids[3], Code: right[ids[3]]}, "new password"); err != nil {
				t.Errorf("the right code an hour later: %v", err)
			}
		})
	})
}

// tableRows counts the rows of the tables a reset could write.
func (e *mailEnv) tableRows(t *testing.T) map[string]int64 {
	t.Helper()
	if err := e.s.FlushAudit(e.ctx); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, table := range []string{"users", "user_roles", "sessions", "refresh_tokens", "revocations", "email_requests", "outbox_mails", "settings", "rate_limits", "audit_events"} {
		var n int64
		if err := e.db.Table(table).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		counts[table] = n
	}
	return counts
}

func diff(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// TestResetUnknownEmailIndistinguishable: a reset for an address without
// an account answers, writes, and meets the mail and code limits exactly
// as one for an address with an account; only the mail is not sent. (Its
// time: BenchmarkRequestPasswordReset.)
func TestResetUnknownEmailIndistinguishable(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		e := newMailEnv(t, dsn, withLimits(Limits{
			MailAddress: Rate{N: 5, Per: time.Hour}, MailClient: Rate{N: 100, Per: time.Hour}, CodeAccount: Rate{N: 10, Per: time.Hour},
		}))
		known := e.register(t).User.Email
		const unknown = "nobody@example.com"
		// The first request makes the codes' key and the client's mail
		// counter: writes of neither kind of address.
		if _, err := e.s.RequestPasswordReset(e.ctx, "first@example.com"); err != nil {
			t.Fatal(err)
		}
		writes := map[string]map[string]int64{}
		requests := map[string][]*models.EmailRequest{}
		for _, email := range []string{known, unknown} {
			before := e.tableRows(t)
			r, err := e.s.RequestPasswordReset(e.ctx, email)
			if err != nil {
				t.Fatalf("%s: %v", email, err)
			}
			writes[email] = diff(before, e.tableRows(t))
			if r.ID == "" || !r.ExpiresAt.Equal(e.c.Now().Add(DefaultResetTTL)) {
				t.Errorf("%s: answer %+v", email, r)
			}
			requests[email] = append(requests[email], r)
		}
		if fmt.Sprint(writes[known]) != fmt.Sprint(writes[unknown]) {
			t.Errorf("rows written per table: known %v, unknown %v", writes[known], writes[unknown])
		}
		if writes[known]["email_requests"] != 1 || writes[known]["outbox_mails"] != 1 {
			t.Errorf("a reset wrote %v, want a request and a mail", writes[known])
		}

		// The mail limit per address: four more each, then refused alike.
		for _, email := range []string{known, unknown} {
			for range 4 {
				r, err := e.s.RequestPasswordReset(e.ctx, email)
				if err != nil {
					t.Fatalf("%s: %v", email, err)
				}
				requests[email] = append(requests[email], r)
			}
		}
		var retry []time.Duration
		for _, email := range []string{known, strings.ToUpper(unknown)} {
			_, err := e.s.RequestPasswordReset(e.ctx, email)
			wantCode(t, err, models.RateLimited, email+": the sixth reset in the hour")
			if c := models.Coded(err); c != nil {
				retry = append(retry, c.RetryAfter)
			}
		}
		if len(retry) == 2 && retry[0] != retry[1] {
			t.Errorf("retryAfter known %s, unknown %s", retry[0], retry[1])
		}

		// Wrong codes: the same answers in the same order.
		outcomes := map[string][]string{}
		for _, email := range []string{known, unknown} {
			for i := range 12 {
				r := requests[email][i/6]
				err := e.s.ResetPassword(e.ctx, Proof{RequestID: r.ID, Code: wrongCode("", i)}, "new password")
				outcomes[email] = append(outcomes[email], models.ErrorCode(err))
			}
		}
		if fmt.Sprint(outcomes[known]) != fmt.Sprint(outcomes[unknown]) {
			t.Errorf("wrong codes answered\nknown   %v\nunknown %v", outcomes[known], outcomes[unknown])
		}
		if outcomes[known][11] != models.RateLimited {
			t.Errorf("the 11th wrong code: %s, want RATE_LIMITED", outcomes[known][11])
		}

		// What is stored of the unknown address: nothing that names it.
		var row models.EmailRequest
		e.db.Where("id = ?", requests[unknown][0].ID).Take(&row)
		if row.UserID != nil || strings.Contains(row.Email, "nobody") {
			t.Errorf("the request of an unknown address: user %v, email %q", row.UserID, row.Email)
		}
		var m models.OutboxMail
		e.db.Where("request_id = ?", row.ID).Take(&m)
		if m.Status != models.MailSuppressed || m.To != "xxxxxx@xxxxxxx.xxx" || strings.Contains(m.Message, "nobody") || m.Message == "" {
			t.Errorf("its mail: status %s, to %q, message of %d bytes (want the real mail's twin to a stand-in address)", m.Status, m.To, len(m.Message))
		}
		var audits []models.AuditEvent
		e.db.Find(&audits)
		for _, a := range audits {
			if strings.Contains(fmt.Sprintf("%v %v", ptrString(a.Detail), ptrString(a.Reason)), "nobody") {
				t.Errorf("audit row names the unknown address: %+v", a)
			}
		}
		if n := e.mails(t, known, mail.KindReset); n != 5 {
			t.Errorf("%d reset mails queued to the known address, want 5", n)
		}
	})
}
