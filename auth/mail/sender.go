package mail

import (
	"context"
	"log/slog"
	"net/mail"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/models"
)

// Outcomes of a delivery attempt, as Observer hears them (the outcome
// label of authql_mail_total).
const (
	OutcomeSent    = "sent"    // delivered
	OutcomeRetried = "retried" // failed, tried again later
	OutcomeFailed  = "failed"  // given up
)

// Observer counts delivery attempts by outcome, for metrics
// (httpapi.Metrics).
type Observer interface{ MailOutcome(outcome string) }

// Auditor records a mail sent or given up in the audit log
// (auth.Service): detail the mail's kind, user its user (nil for none).
type Auditor interface {
	AuditMail(ctx context.Context, sent bool, kind string, userID *string)
}

// Delivery schedule. An attempt that fails is tried again after
// RetryBackoff(attempts): 1 min, doubling, at most 4 h. The 14th attempt
// is the last, a little over a day (24 h 15 min) after the first: long
// enough to outlast an SMTP outage or a night's misconfiguration, short
// enough that a reset link is not delivered after it has long expired.
const (
	MaxAttempts = 14
	firstRetry  = time.Minute
	maxRetry    = 4 * time.Hour
	// DefaultPoll is how often a sender looks for due mail when nothing
	// woke it: another replica's queued mail, or a retry coming due.
	DefaultPoll = 2 * time.Second
	// lease is how long a claimed mail is left to its sender before
	// another may claim it: past the SMTP timeouts of one attempt
	// (sendTimeout), so that a slow delivery is never doubled.
	lease = 10 * time.Minute
	// sendTimeout bounds one attempt, whatever the server does.
	sendTimeout = 3 * time.Minute
	// errorLogEvery spaces the log lines of a failing outbox query (a
	// database outage would otherwise log one at every poll).
	errorLogEvery = time.Minute
)

// RetryBackoff is the wait after the attempts-th attempt failed.
func RetryBackoff(attempts int) time.Duration {
	d := firstRetry
	for i := 1; i < attempts && d < maxRetry; i++ {
		d *= 2
	}
	return min(d, maxRetry)
}

// SenderConfig configures a Sender.
type SenderConfig struct {
	DB        *gorm.DB
	Transport Transport
	// From is the envelope sender: AUTH_MAIL_FROM (its address is used).
	From string
	// Sealer opens the messages the Composer sealed (AUTH_ENCRYPTION_KEY).
	Sealer   *secret.Sealer
	Observer Observer // nil: none
	Audit    Auditor  // nil: none
	Log      *slog.Logger
	Now      func() time.Time
	Poll     time.Duration // 0: DefaultPoll
}

// Sender delivers the outbox's mails in the background: every Poll, and
// at once when woken (Wake) after a commit that queued one. It is the
// only part of authql that talks SMTP, so no request ever waits on it.
type Sender struct {
	cfg     SenderConfig
	from    string
	wake    chan struct{}
	lastErr atomic.Int64 // when logQueryError last logged, in Unix ns
}

// NewSender returns a Sender; Run starts it.
func NewSender(cfg SenderConfig) *Sender {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	from := cfg.From
	if a, err := mail.ParseAddress(cfg.From); err == nil {
		from = a.Address
	}
	return &Sender{cfg: cfg, from: from, wake: make(chan struct{}, 1)}
}

// Wake has Run look for due mail now rather than at its next poll. It
// never blocks: a wake already pending covers this one. A nil Sender
// ignores it (a service built before its sender).
func (s *Sender) Wake() {
	if s == nil {
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run delivers due mail until ctx is done. Several senders (one per
// replica) may share a PostgreSQL database: each claims mails of its own
// (see models.ClaimMail).
func (s *Sender) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		s.SendDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// SendDue delivers the mails due now, one at a time, until none is left
// or ctx is done.
func (s *Sender) SendDue(ctx context.Context) {
	for ctx.Err() == nil {
		m, err := models.ClaimMail(ctx, s.cfg.DB, s.now(), lease)
		if err != nil {
			if ctx.Err() == nil {
				s.logQueryError(ctx, err)
			}
			return
		}
		if m == nil {
			return
		}
		s.deliver(ctx, m)
	}
}

// deliver makes the attempt of a claimed mail and records its outcome.
func (s *Sender) deliver(ctx context.Context, m *models.OutboxMail) {
	err := s.send(ctx, m)
	// The outcome is recorded even when ctx ended mid-send (shutdown):
	// the mail is then tried again rather than left to its lease.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	log := s.cfg.Log.With("mail", m.ID, "kind", m.Kind, "domain", Domain(m.To), "attempt", m.Attempts)
	now := s.now()
	var outcome string
	var ok bool
	var dbErr error
	switch {
	case err == nil:
		outcome = OutcomeSent
		ok, dbErr = models.MarkMailSent(rctx, s.cfg.DB, m, now)
		log.InfoContext(ctx, "mail sent")
	case Permanent(err) || m.Attempts >= MaxAttempts:
		outcome = OutcomeFailed
		ok, dbErr = models.FailMail(rctx, s.cfg.DB, m, redact(err, m.To))
		log.WarnContext(ctx, "mail given up", "err", redact(err, m.To))
	default:
		outcome = OutcomeRetried
		next := now.Add(RetryBackoff(m.Attempts))
		if ctx.Err() != nil {
			next = now // interrupted by shutdown: the next start tries again
		}
		ok, dbErr = models.RetryMail(rctx, s.cfg.DB, m, next, redact(err, m.To))
		log.WarnContext(ctx, "mail not delivered; will retry", "err", redact(err, m.To), "next_attempt_at", next)
	}
	if dbErr != nil {
		// A mail sent but not marked is sent again when its lease ends:
		// twice rather than never.
		log.ErrorContext(ctx, "recording a mail's outcome failed", "outcome", outcome, "err", dbErr)
		return
	} else if !ok {
		log.WarnContext(ctx, "a mail's lease ran out before its outcome was recorded", "outcome", outcome)
		return
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.MailOutcome(outcome)
	}
	if s.cfg.Audit != nil && outcome != OutcomeRetried {
		s.cfg.Audit.AuditMail(rctx, outcome == OutcomeSent, m.Kind, m.UserID)
	}
}

// send opens m's message and hands it to the transport, within
// sendTimeout.
func (s *Sender) send(ctx context.Context, m *models.OutboxMail) error {
	msg := m.Message
	if s.cfg.Sealer != nil {
		var err error
		// A message that does not open (its key was removed) is retried:
		// putting the key back in AUTH_ENCRYPTION_KEY_PREVIOUS saves it.
		if msg, _, err = s.cfg.Sealer.Open(MessageAAD(m.ID), m.Message); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	return s.cfg.Transport.Send(ctx, Message{ID: m.ID, From: s.from, To: m.To, Data: []byte(msg)})
}

// logQueryError logs a failing outbox query, at most every errorLogEvery.
func (s *Sender) logQueryError(ctx context.Context, err error) {
	now, last := time.Now().UnixNano(), s.lastErr.Load()
	if (last == 0 || time.Duration(now-last) >= errorLogEvery) && s.lastErr.CompareAndSwap(last, now) {
		s.cfg.Log.ErrorContext(ctx, "reading the mail outbox failed; retrying", "err", err)
	}
}

func (s *Sender) now() time.Time { return s.cfg.Now().UTC() }

// redact is err's text with the recipient's address taken out: servers
// quote it in their refusals ("550 <ann@example.com>: no such user"), and
// log lines and the stored last error name no one.
func redact(err error, to string) string {
	text := err.Error()
	if local, _, ok := strings.Cut(to, "@"); ok && local != "" {
		// Case-insensitively: servers may quote it lower-cased.
		text = regexp.MustCompile(`(?i)`+regexp.QuoteMeta(local)+`@`).ReplaceAllLiteralString(text, "<recipient>@")
	}
	return text
}
