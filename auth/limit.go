package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/authql/authql/auth/ratelimit"
	"github.com/authql/authql/auth/secret"
	"github.com/authql/authql/models"
)

// Rate is a limit of N operations per window (see ratelimit.Rate), named
// here so that Config and Limits read in one package.
type Rate = ratelimit.Rate

// ParseRate reads "N/DURATION" (such as "10/15m") or "off" (or "0"); see
// ratelimit.ParseRate.
func ParseRate(s string) (Rate, error) { return ratelimit.ParseRate(s) }

// Limits are the rate limits of the service. Login counts failed attempts
// (a successful login gives its attempt back); Register and Refresh count
// every attempt.
type Limits struct {
	LoginAccount Rate // failed logins per account and client
	LoginClient  Rate // failed logins per client, whatever the account
	Register     Rate // registrations per client
	Refresh      Rate // refreshes per client
	// Failures counts the failed operations of each signed-in user that
	// fail in bulk when scripted, and each failure of which would be an
	// audit row: revokeSession, the admin's actions on users, and removing
	// or adding a second factor (see limitFailures).
	Failures Rate
	// MailAddress and MailClient bound the mails that requests make
	// (AUTH_MAIL_LIMIT, AUTH_MAIL_CLIENT_LIMIT): per address (counted
	// alike whether or not it has an account) and per client.
	MailAddress Rate
	MailClient  Rate
	// CodeAccount bounds the wrong mailed codes per account, across all of
	// its requests (each request also dies after MaxCodeFailures).
	CodeAccount Rate
	// MfaAccount bounds the wrong second-factor proofs per account (TOTP
	// codes, recovery codes, passkey assertions), across its challenges
	// and from any address, so that spreading guesses over addresses does
	// not help (each challenge also dies after models.MaxChallengeFailures).
	MfaAccount Rate
	// PasskeyClient bounds the passkey sign-ins begun per client: each
	// stores a ceremony.
	PasskeyClient Rate
	// RecoveryCodes bounds the batches of recovery codes a user has made
	// (regenerateRecoveryCodes): each costs ten password hashes.
	RecoveryCodes Rate
}

// DefaultLimits are the limits when nothing is configured.
var DefaultLimits = Limits{
	// Ten guesses per account from one client per quarter hour, then one
	// every 90 s: too slow to guess a password, generous for a person who
	// mistypes. Keyed by account and client, so an attacker cannot lock the
	// owner out from elsewhere.
	LoginAccount: Rate{N: 10, Per: 15 * time.Minute},
	// One client guessing across many accounts (credential stuffing). A NAT
	// or office shares one address, hence the larger budget.
	LoginClient: Rate{N: 100, Per: 15 * time.Minute},
	Register:    Rate{N: 20, Per: time.Hour},
	// A frontend refreshes every few minutes per tab; this bounds a client
	// that loops, not a busy NAT.
	Refresh: Rate{N: 600, Per: time.Minute},
	// Far more than a person fails at by hand; a script looping on wrong
	// ids is slowed to one attempt every two seconds.
	Failures: Rate{N: 30, Per: time.Minute},
	// A person asks again a few times when a mail is slow; more than
	// that is someone flooding an inbox.
	MailAddress: Rate{N: 5, Per: time.Hour},
	MailClient:  Rate{N: 30, Per: time.Hour},
	CodeAccount: Rate{N: 10, Per: time.Hour},
	// A 6-digit code has a million values and three are accepted at a
	// time: past the first 10, one guess every 90 s makes a right guess
	// take about 350 days on average (333,000 guesses).
	MfaAccount:    Rate{N: 10, Per: 15 * time.Minute},
	PasskeyClient: Rate{N: 60, Per: time.Hour},
	// A person regenerates after using a few, or after losing the sheet;
	// more is a script spending the hash pool.
	RecoveryCodes: Rate{N: 5, Per: time.Hour},
}

// rateLimiter is what the service needs of its rate limiter
// (ratelimit.Limiter): Take reserves one operation under a counter's key
// and returns how long to wait when the rate is exhausted (zero when the
// operation may go ahead); Give returns a reserved operation; Sweep drops
// the counters that have run down.
type rateLimiter interface {
	Take(ctx context.Context, key string, r Rate, now time.Time) (retryAfter time.Duration, err error)
	Give(ctx context.Context, key string, r Rate, now time.Time) error
	Clear(ctx context.Context, key string) error
	Sweep(now time.Time)
}

var _ rateLimiter = (*ratelimit.Limiter)(nil)

// limitKey names a counter: kind, readable (the audit log's coalescing
// splits on the colon), then a keyed hash of the parts, so that the table
// holds no email addresses and every key has the same short length.
func (s *Service) limitKey(kind string, parts ...string) string {
	return keyedLimitKey(s.limitSecret, kind, parts...)
}

// keyedLimitKey is limitKey with the secret given. An HMAC, not a plain
// hash: the parts are an email as typed and an address, few enough to
// enumerate, so a plain hash in a stolen copy of the rate_limits table
// would tell which emails were tried from which addresses. The secret is
// generated once and kept in the database (encrypted under
// AUTH_ENCRYPTION_KEY when set), so that replicas name counters alike.
func keyedLimitKey(secret []byte, kind string, parts ...string) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(kind))
	h.Write([]byte{0})
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return kind + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}

// rateLimitSetting is the setting that holds the rate-limit key.
const rateLimitSetting = "rate_limit_key"

// storedSecret returns the 32-byte secret kept in setting name, generating
// and storing it on first use, encrypted by seal (and encrypted again when
// it was stored in plaintext or under a previous key).
func storedSecret(ctx context.Context, db *gorm.DB, seal *secret.Sealer, name string, log *slog.Logger) ([]byte, error) {
	aad := secret.SettingAAD(name)
	v, err := models.SettingValue(ctx, db, name, func() (string, error) {
		return seal.Seal(aad, base64.RawStdEncoding.EncodeToString(secret.Random()))
	})
	if err != nil {
		return nil, err
	}
	plain, stale, err := seal.Open(aad, v)
	if err != nil {
		return nil, fmt.Errorf("setting %s: %w", name, err)
	}
	key, err := base64.RawStdEncoding.DecodeString(plain)
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("setting %s is corrupt", name)
	}
	if stale {
		sealed, err := seal.Seal(aad, plain)
		if err != nil {
			return nil, err
		}
		if done, err := models.ReplaceSetting(ctx, db, name, v, sealed); err != nil {
			return nil, err
		} else if done {
			log.InfoContext(ctx, "setting encrypted under AUTH_ENCRYPTION_KEY", "setting", name, "fingerprint", seal.Fingerprint())
		}
	}
	return key, nil
}

// errRateLimited is the answer past a limit. It says nothing about the
// account, so that it cannot tell whether an email is registered.
func errRateLimited(retryAfter time.Duration) error {
	return models.RateLimitedf(retryAfter, "too many attempts; try again later")
}

// take reserves one operation under each of the (key, rate) pairs, all or
// none: if one is exhausted, those already reserved are given back and a
// RateLimited error is returned. give returns the reservations.
func (s *Service) take(ctx context.Context, now time.Time, keys []string, rates []Rate) (give func(), err error) {
	return s.takeFor(ctx, now, "", keys, rates)
}

// takeFor is take for limits that count a user's operations: the
// RATE_LIMITED events of their refusals name userID.
func (s *Service) takeFor(ctx context.Context, now time.Time, userID string, keys []string, rates []Rate) (give func(), err error) {
	var taken []int
	give = func() {
		for _, i := range taken {
			if err := s.limiter.Give(context.WithoutCancel(ctx), keys[i], rates[i], now); err != nil {
				s.log.ErrorContext(ctx, "give back rate limit", "err", err)
			}
		}
	}
	for i, r := range rates {
		if !r.Enabled() {
			continue
		}
		wait, err := s.limiter.Take(ctx, keys[i], r, now)
		if err == nil && wait > 0 {
			err = errRateLimited(wait)
			s.auditRateLimited(ctx, keys[i], userID, now)
		}
		if err != nil {
			give()
			return nil, err
		}
		taken = append(taken, i)
	}
	return give, nil
}

// limitFailures counts one operation of userID against Limits.Failures
// before it runs, and returns done, to be called with its outcome: a
// success gives the count back, so that only failures are counted (as
// Login counts only failed attempts). Past the limit it returns
// RateLimited and the operation does not run: a script repeating a
// failing call then costs no audit row per call, only the coalesced
// RATE_LIMITED event (see auditRateLimited). Counted before rather than
// after, so that concurrent calls cannot all slip under the limit.
//
// logout is not counted: with a valid token it fails only when the
// database does. Nor are bad cursors of users and auditLog: they are
// refused before any query, and write and log nothing.
func (s *Service) limitFailures(ctx context.Context, userID string) (done func(error), err error) {
	give, err := s.takeFor(ctx, s.now(), userID, []string{s.limitKey("user-failures", userID)}, []Rate{s.cfg.Limits.Failures})
	if err != nil {
		return nil, err
	}
	return func(err error) {
		if err == nil {
			give()
		}
	}, nil
}
