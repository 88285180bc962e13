package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/authql/authql/auth/mail"
	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/models"
)

// Proof is what a mailed request is answered with: the link's token, or
// the request's id with the mailed code.
type Proof struct {
	Token     string
	RequestID string
	Code      string
}

// MaxCodeFailures is how many attempts at its code a request takes; it is
// dead after that many wrong ones.
const MaxCodeFailures = 5

// A code is typed by hand, read from a phone or a printout: 8 characters
// of an alphabet without the ones people confuse (no 0 or O, no 1 or I,
// so L stands alone), 40 bits. Guessing is bounded by MaxCodeFailures per
// request and Limits.CodeAccount per account (10 an hour): 240 guesses a
// day at 2^-40 each leave an attacker a chance of about 2^-32 a day.
const (
	codeAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
	codeLen      = 8
)

// codeKeySetting is the setting that holds the key of the codes' MACs.
const codeKeySetting = "email_code_key"

// errNoMail refuses the flows that mail when no Composer is configured.
var errNoMail = models.Errorf(models.Internal, "mail is not configured")

// requestSpec is what differs between the kinds of request.
type requestSpec struct {
	kind string
	mail mail.Kind
	path string // of the app's page that the link opens
	ttl  time.Duration
}

func (s *Service) spec(kind string) requestSpec {
	switch kind {
	case models.RequestReset:
		return requestSpec{kind, mail.KindReset, "/reset", s.cfg.ResetTTL}
	case models.RequestVerify:
		return requestSpec{kind, mail.KindVerify, "/verify", s.cfg.VerifyTTL}
	default:
		return requestSpec{models.RequestEmailChange, mail.KindEmailChange, "/confirm-email", s.cfg.EmailChangeTTL}
	}
}

// newCode returns a random code. 256 is a multiple of the alphabet's 32
// letters, so masking a random byte picks each letter alike.
func newCode() string {
	b := make([]byte, codeLen)
	rand.Read(b) // never fails (crypto/rand)
	for i := range b {
		b[i] = codeAlphabet[b[i]&31]
	}
	return string(b)
}

// cleanCode returns the code as typed in its canonical form (upper case,
// no spaces or dashes), and whether it could be a code at all.
func cleanCode(c string) (string, bool) {
	c = strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(c))
	if len(c) != codeLen {
		return "", false
	}
	for i := range len(c) {
		if strings.IndexByte(codeAlphabet, c[i]) < 0 {
			return "", false
		}
	}
	return c, true
}

// codeMAC is the stored form of a request's code: an HMAC bound to the
// request's id. Keyed, because 40 bits are few enough to enumerate: a
// plain hash in a stolen copy of the table would give every code away. A
// code is valid for its request only.
func (s *Service) codeMAC(ctx context.Context, requestID, code string) (string, error) {
	key, err := s.codeKey.get(ctx, s)
	if err != nil {
		return "", err
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(requestID))
	h.Write([]byte{0})
	h.Write([]byte(code))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// lazySecret is the codes' key, read (or made) on first use rather than in
// NewService: the commands need it only to mail a reset, and must not fail
// without one otherwise.
type lazySecret struct {
	mu  sync.Mutex
	key []byte
}

func (l *lazySecret) get(ctx context.Context, s *Service) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.key != nil {
		return l.key, nil
	}
	seal, err := secret.NewSealer(s.cfg.Encryption)
	if err != nil {
		return nil, err
	}
	// Kept as the rate-limit key is (see storedSecret): every replica and
	// the commands MAC codes alike, and it is encrypted at rest.
	key, err := storedSecret(ctx, s.db, seal, codeKeySetting, s.log)
	if err != nil {
		return nil, err
	}
	l.key = key
	return key, nil
}

// pending is a request to insert, with its secrets in clear for the mail.
type pending struct {
	req         *models.EmailRequest
	token, code string
}

// newRequest makes a request of spec for userID (nil: an email without an
// account) mailed to email. Its secrets are made and hashed alike in
// either case, so that both cost the same.
func (s *Service) newRequest(ctx context.Context, spec requestSpec, userID *string, email string) (*pending, error) {
	now := s.now()
	token, hash := newRefreshToken() // 256 bits, stored as SHA-256: see token.go
	p := &pending{token: token, code: newCode(), req: &models.EmailRequest{
		ID: uuid.NewString(), Kind: spec.kind, UserID: userID, Email: email, TokenHash: hash,
		CreatedAt: now, ExpiresAt: now.Add(spec.ttl),
	}}
	var err error
	p.req.CodeMAC, err = s.codeMAC(ctx, p.req.ID, p.code)
	return p, err
}

// vars are the template variables of a mail about p sent now.
func (s *Service) vars(ctx context.Context, spec requestSpec, p *pending, to string) mail.Vars {
	v := mail.Vars{AppURL: s.cfg.Mail.AppURL(), Email: to, At: s.now(), IP: ClientFrom(ctx).IP}
	if p != nil {
		v.Link = s.cfg.Mail.Link(spec.path, p.token)
		v.Code = p.code
		v.ExpiresAt = p.req.ExpiresAt
		v.ExpiresIn = humanDuration(spec.ttl)
	}
	return v
}

// requestMail composes the mail that carries p's secrets to to, owned by
// p's user and request.
func (s *Service) requestMail(ctx context.Context, spec requestSpec, p *pending, to string) (*models.OutboxMail, error) {
	m, err := s.cfg.Mail.Compose(spec.mail, to, s.vars(ctx, spec, p, to))
	if err != nil {
		return nil, err
	}
	m.UserID, m.RequestID = p.req.UserID, &p.req.ID
	return m, nil
}

// humanDuration is d in the words of a mail: "15 minutes", "1 hour".
func humanDuration(d time.Duration) string {
	unit, n := "minute", int(d/time.Minute)
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		unit, n = "hour", int(d/time.Hour)
	case d < time.Minute:
		unit, n = "second", int(d/time.Second)
	}
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// takeMail counts one mail to the (normalized) address from the request's
// client against Limits.MailAddress and Limits.MailClient. The address is
// counted whether or not it has an account, so that the limit answers
// alike for both.
func (s *Service) takeMail(ctx context.Context, email string) (give func(), err error) {
	client := ClientFrom(ctx).limitKey()
	return s.take(ctx, s.now(),
		[]string{s.limitKey("mail-address", email), s.limitKey("mail-client", client)},
		[]Rate{s.cfg.Limits.MailAddress, s.cfg.Limits.MailClient})
}

// proven returns the pending request of kind that proof answers, or
// BadUserInput (ErrRequestSpent) for a wrong, used or expired token or
// code, and BadUserInput for a proof that is not exactly one of a token or
// a request id with a code.
//
// A code is counted before it is compared, twice: against its request's
// MaxCodeFailures (in the database, one conditional UPDATE) and against
// Limits.CodeAccount for the request's account, taken first and given
// back when the code is right. Concurrent guesses cannot slip past
// either: each has been counted before any is checked.
func (s *Service) proven(ctx context.Context, kind string, proof Proof) (*models.EmailRequest, error) {
	hasToken, hasCode := proof.Token != "", proof.RequestID != "" || proof.Code != ""
	switch {
	case hasToken && hasCode:
		return nil, models.Errorf(models.BadUserInput, "give either the link's token or the request id and code, not both")
	case hasToken:
		if !wellFormedRefreshToken(proof.Token) {
			return nil, models.ErrRequestSpent
		}
		return models.PendingRequestByToken(ctx, s.db, kind, hashRefreshToken(proof.Token), s.now())
	case proof.RequestID == "" || proof.Code == "":
		return nil, models.Errorf(models.BadUserInput, "give the link's token, or the request id and its code")
	}
	id, err := uuid.Parse(proof.RequestID)
	code, ok := cleanCode(proof.Code)
	if err != nil || !ok {
		return nil, models.ErrRequestSpent // not a guess worth counting: no code is of that shape
	}
	now := s.now()
	r, err := models.PendingRequest(ctx, s.db, kind, id.String(), now)
	if err != nil {
		return nil, err
	}
	give, err := s.takeFor(ctx, now, ptrString(r.UserID), []string{s.codeAccountKey(r)}, []Rate{s.cfg.Limits.CodeAccount})
	if err != nil {
		return nil, err
	}
	if counted, err := models.CountCodeAttempt(ctx, s.db, r.ID, MaxCodeFailures, now); err != nil || !counted {
		give() // dead or spent meanwhile: the code was not checked
		if err == nil {
			err = models.ErrRequestSpent
		}
		return nil, err
	}
	mac, err := s.codeMAC(ctx, r.ID, code)
	if err != nil {
		return nil, err
	}
	if r.UserID == nil || !hmac.Equal([]byte(mac), []byte(r.CodeMAC)) {
		return nil, models.ErrRequestSpent
	}
	// Only wrong codes count, against the account and the request.
	give()
	if err := models.UncountCodeAttempt(ctx, s.db, r.ID); err != nil {
		return nil, err
	}
	return r, nil
}

// codeAccountKey names the counter of wrong codes of r's account. A reset
// asked for an email without an account has none: its counter is the
// keyed hash its row holds in place of the address (see
// Service.RequestPasswordReset), so that wrong codes are limited per
// address alike, known or not.
func (s *Service) codeAccountKey(r *models.EmailRequest) string {
	if r.UserID == nil {
		return s.limitKey("code-account", "address", r.Email)
	}
	return s.limitKey("code-account", *r.UserID)
}

func ptrString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
