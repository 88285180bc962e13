// Package auth is authql's token, password and session service: it signs
// users up and in, rotates refresh tokens, revokes sessions, authenticates
// access tokens and decides @auth rules.
package auth

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"
	"gorm.io/gorm"

	"github.com/authql/authql/models"
)

// Password length limits. The upper bound is in bytes and is checked before
// any hashing, so that a huge password cannot make one request expensive.
const (
	MinPasswordRunes = 8
	MaxPasswordBytes = 128
)

// Config configures a Service.
type Config struct {
	Issuer        string
	Audience      string
	AccessTTL     time.Duration
	RefreshTTL    time.Duration
	ReuseInterval time.Duration // grace for presenting a just-rotated refresh token again
	Signup        bool          // whether Register is open
	Argon2        Argon2Params
	// Limits are the rate limits; the zero value limits nothing.
	Limits Limits
	// HashWorkers bounds concurrent password hashes (0: DefaultHashWorkers;
	// never more than the cores); HashWait is how long one waits for a worker
	// before the operation fails with RateLimited (0: DefaultHashWait).
	HashWorkers int
	HashWait    time.Duration
	// UserCacheSize bounds the users kept in memory (0:
	// DefaultUserCacheSize).
	UserCacheSize int
	// MaxSessions bounds each user's live sessions (0:
	// DefaultMaxSessions): a sign-in past it ends the user's least
	// recently used session.
	MaxSessions int
	// TrustedProxies are the addresses whose X-Forwarded-For is believed
	// (see Middleware); empty trusts none.
	TrustedProxies []netip.Prefix
	// JWTAlg is the algorithm of the keys authql generates: AlgHS256,
	// AlgEdDSA or AlgES256; "" keeps the key store's (see KeyConfig.Alg).
	JWTAlg string
	// ReadOnlyKeys leaves the signing keys as they are (no key created,
	// replaced or retired) and loads none: for the commands, which sign
	// nothing (see KeyConfig.ReadOnly).
	ReadOnlyKeys bool
	// Encryption encrypts the secrets stored in the database: private
	// signing keys, generated HS256 secrets, the rate-limit key.
	Encryption EncryptionKeys
	// JWTPrivateKey, when set, is the signing key (AUTH_JWT_PRIVATE_KEY_FILE)
	// instead of a generated one; it must be of JWTAlg.
	JWTPrivateKey crypto.Signer
	// RefreshCookie also hands the refresh token to browsers in an HttpOnly
	// cookie and lets refresh read it from there (see cookie.go).
	RefreshCookie bool
	// CookieInsecure leaves Secure off the cookie, for local http only.
	CookieInsecure bool
	// AllowedOrigins are the exact origins (scheme://host[:port]) of the
	// frontends that may use the refresh cookie and get CORS answers.
	AllowedOrigins []string
	// SyncTimeout is how long after losing its listening connection (see
	// Listen) the service keeps accepting access tokens before it refuses
	// them with ServiceUnavailable (0: DefaultSyncTimeout).
	SyncTimeout time.Duration
	// Observer is told of auth events and hash waits, for metrics; nil
	// observes nothing.
	Observer Observer
	// AuditRetention is how long audit events are kept (0:
	// DefaultAuditRetention); Purge deletes older ones.
	AuditRetention time.Duration
	// AuditQueueBytes bounds the memory of the audit events waiting for
	// the database (0: DefaultAuditQueueBytes); see auditWriter.
	AuditQueueBytes int64
	// Now is the clock; nil means time.Now. Times are used in UTC.
	Now func() time.Time
}

// Service is the token, password and session service.
type Service struct {
	db     *gorm.DB
	cfg    Config
	signer *Signer
	hasher *Hasher
	pool   *hashPool
	timing *failTiming // pads failed logins (see timing.go)
	log    *slog.Logger

	limiter Limiter
	users   *userCache
	tokens  *tokenCache
	revs    revocations
	// origins is Config.AllowedOrigins, lower-cased.
	origins map[string]bool

	mu     sync.RWMutex
	grants map[string][]string // role -> permissions

	sync syncState // whether changes by other replicas may have been missed

	// limitSecret keys the names of rate-limit counters (see limitKey).
	limitSecret []byte

	audits     *auditWriter // see audit.go
	rateAudits rateAudits
	// originWarnings coalesces the log lines of refused cookie origins
	// (see warnOrigin).
	originWarnings rateAudits
}

// NewService returns a Service. key is an HS256 secret held outside the
// database (AUTH_JWT_SECRET), or nil for keys kept in the key store (see
// OpenKeySet). It loads the signing keys, the live revocations and the role
// permissions from db.
func NewService(ctx context.Context, db *gorm.DB, key []byte, cfg Config, log *slog.Logger) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = DefaultSyncTimeout
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.AuditRetention <= 0 {
		cfg.AuditRetention = DefaultAuditRetention
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.AuditQueueBytes <= 0 {
		cfg.AuditQueueBytes = DefaultAuditQueueBytes
	}
	s := &Service{
		db: db, cfg: cfg, log: log,
		revs:    revocations{ids: map[string]time.Time{}},
		pool:    newHashPool(cfg.HashWorkers, cfg.HashWait, cfg.Observer),
		limiter: NewLimiter(db),
		users:   newUserCache(cfg.UserCacheSize),
		tokens:  newTokenCache(),
		origins: map[string]bool{},
	}
	for _, o := range cfg.AllowedOrigins {
		s.origins[strings.ToLower(o)] = true
	}
	// A client's hashes refused for its share of the pool are audited as
	// the refusals of a rate limit are: coalesced, not a row each.
	s.pool.refused = func(ctx context.Context, client string) {
		s.auditRateLimited(ctx, s.limitKey("hash-client", client), "", s.now())
	}
	s.pool.collect = cfg.Argon2.Memory >= collectMinKiB
	s.sync.timeout = cfg.SyncTimeout
	keys, err := OpenKeySet(ctx, db, KeyConfig{Alg: cfg.JWTAlg, Secret: key, PrivateKey: cfg.JWTPrivateKey, ReadOnly: cfg.ReadOnlyKeys, Encryption: cfg.Encryption}, cfg.AccessTTL, s.now, log)
	if err != nil {
		return nil, err
	}
	if cfg.ReadOnlyKeys {
		// The commands take no rate limits: a key of their own, rather
		// than one read (and perhaps not decryptable) or written.
		s.limitSecret = randomSecret()
	} else if s.limitSecret, err = storedSecret(ctx, db, keys.seal, rateLimitSetting, log); err != nil {
		return nil, err
	}
	s.signer = newSigner(keys, cfg.Issuer, cfg.Audience, s.now)
	if s.hasher, err = NewHasher(cfg.Argon2); err != nil {
		return nil, err
	}
	// The dummy's class is measured before the first login: see failTiming.
	s.timing = newFailTiming()
	s.verify(s.hasher.dummy, rand.Text())
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	// Last: nothing above can fail once the writer's goroutine runs.
	s.audits = newAuditWriter(db, log, cfg.AuditQueueBytes, auditBatchSize, auditFlushEvery)
	return s, nil
}

// now is the service clock in UTC (SQLite compares times as UTC text).
func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Reload re-reads the unexpired revocations and the role permissions.
func (s *Service) Reload(ctx context.Context) error {
	loaded, err := models.Revocations(ctx, s.db, s.now())
	if err != nil {
		return err
	}
	s.revs.merge(loaded, s.now())
	return s.reloadGrants(ctx)
}

// reloadGrants re-reads the role permissions.
func (s *Service) reloadGrants(ctx context.Context) error {
	roles, err := models.Roles(ctx, s.db)
	if err != nil {
		return err
	}
	grants := make(map[string][]string, len(roles))
	for _, r := range roles {
		grants[r.Name] = r.PermissionNames()
	}
	s.mu.Lock()
	s.grants = grants
	s.mu.Unlock()
	return nil
}

// Grants returns the permissions of a role.
func (s *Service) Grants(role string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.grants[role]
}

// KeyID returns the kid of the current signing key.
func (s *Service) KeyID() string { return s.signer.KeyID() }

// Keys returns the signing keys.
func (s *Service) Keys() *KeySet { return s.signer.keys }

// Grant is what a successful register, login or refresh returns.
type Grant struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    int // seconds until the access token expires
	User         *models.User
	SessionID    string
}

// sessionID is g's session, or "" for no grant.
func (g *Grant) sessionID() string {
	if g == nil {
		return ""
	}
	return g.SessionID
}

var errBadCredentials = models.Errorf(models.Unauthenticated, "invalid email or password")

// Register creates a user with the role "user" and signs it in. It returns
// BadUserInput for an invalid email or password or a taken email, and
// Forbidden when sign-up is disabled, ServiceUnavailable when the audit
// log cannot take its record (see auditRoom) or the database is down.
func (s *Service) Register(ctx context.Context, email, password string) (_ *Grant, err error) {
	if !s.cfg.Signup {
		return nil, models.Errorf(models.Forbidden, "sign-up is disabled")
	}
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	client := ClientFrom(ctx).limitKey()
	if _, err := s.take(ctx, s.now(), []string{s.limitKey("register", client)}, []Rate{s.cfg.Limits.Register}); err != nil {
		return nil, err
	}
	// The user, its roles and its first session commit together or not at
	// all: a registration that fails after the account was inserted would
	// leave an account its owner cannot sign in to, and its email taken.
	ns, token := s.newSession(ctx, nil)
	u, err := s.createUser(ctx, email, password, []string{models.RoleUser}, ns)
	if err != nil {
		if !errors.Is(err, errHashShare) { // audited as a RATE_LIMITED event
			s.audit(ctx, event{typ: models.AuditRegister, err: err})
		}
		return nil, err
	}
	g, err := s.grant(ctx, u, ns.Session.ID, token, ns.Session.CreatedAt)
	s.audit(ctx, event{typ: models.AuditRegister, err: err, userID: u.ID, sessionID: g.sessionID()})
	return g, err
}

// createUser checks the email and password, hashes the password and
// inserts the user with roles and, when first is set, its first session in
// the same transaction.
func (s *Service) createUser(ctx context.Context, email, password string, roles []string, first *models.NewSession) (*models.User, error) {
	email, err := models.NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	password, err = newPassword(password)
	if err != nil {
		return nil, err
	}
	var hash string
	if perr := s.pool.do(ctx, func() { hash, err = s.hasher.Hash(password) }); perr != nil {
		return nil, perr
	}
	if err != nil {
		return nil, err
	}
	u := &models.User{ID: uuid.NewString(), Email: email, PasswordHash: hash}
	if err := models.CreateUser(ctx, s.db, u, roles, first); err != nil {
		return nil, err
	}
	return u, nil
}

// Login checks an email and password and starts a session. Every failure
// returns the same Unauthenticated error, after the same time (see
// failTiming), whether or not the email has an account and whatever its
// hash's cost. An email that NormalizeEmail refuses, and a password over
// MaxPasswordBytes or with bytes no password has (see checkPasswordBytes),
// are BadUserInput, refused before hashing. Past the failed-login limits of
// the account and client, or when no hashing worker frees up in time, it
// returns RateLimited without checking the password. While the audit log
// cannot take its record (see auditRoom) it returns ServiceUnavailable.
func (s *Service) Login(ctx context.Context, email, password string) (*Grant, error) {
	if err := checkPasswordBytes(password); err != nil {
		return nil, err
	}
	email, err := models.NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	now, client := s.now(), ClientFrom(ctx).limitKey()
	// The attempt is counted before the password is checked, so that
	// concurrent requests cannot all slip under the limit, and refused
	// attempts are not checked at all: past the limit, the right password
	// fails like a wrong one. The account key is the email as typed, known
	// or not, so the answer does not reveal whether an account exists.
	giveBack, err := s.take(ctx, now,
		[]string{s.limitKey("login-account", email, client), s.limitKey("login-client", client)},
		[]Rate{s.cfg.Limits.LoginAccount, s.cfg.Limits.LoginClient})
	if err != nil {
		return nil, err
	}
	u, newHash, err := s.checkPassword(ctx, email, password)
	if err != nil {
		if models.ErrorCode(err) == models.RateLimited {
			giveBack() // the password was never checked
		}
		if errors.Is(err, errHashShare) {
			// A flood from one client: its refusals are coalesced in one
			// RATE_LIMITED event (see hashPool.refused), not a row each.
			return nil, err
		}
		// The user when the email has an account; never the email typed,
		// which is at times a password typed in the wrong field.
		s.audit(ctx, event{typ: models.AuditLogin, err: err, userID: userIDOf(u)})
		return nil, err
	}
	// Only failures count: a successful login gives its attempt back.
	giveBack()
	u.LastLoginAt = &now
	g, err := s.startSession(ctx, u, &models.LoginStamp{At: now, NewHash: newHash})
	s.forgetUser(u.ID) // its last login changed (and perhaps its hash)
	s.audit(ctx, event{typ: models.AuditLogin, err: err, userID: u.ID, sessionID: g.sessionID()})
	return g, err
}

// checkPassword returns the user with the email if password is theirs and,
// when its stored hash is outdated, a new hash to store. Hashing runs on the
// bounded pool, all of one login's on one worker. When the email has an
// account, the user comes with an error too, for the audit log.
//
// Passwords are hashed in NFC (see newPassword), so that "é" typed as one
// code point or as "e" and a combining accent is one password. A hash made
// before that holds the form typed then: when the NFC form fails and the
// typed form differs, the typed form is tried too and, if it matches, the
// hash is replaced by one of the NFC form. A wrong password costs a second
// verification only then, for unknown emails alike, and every failure is
// padded to the same time (see failTiming).
func (s *Service) checkPassword(ctx context.Context, email, typed string) (*models.User, string, error) {
	password := norm.NFC.String(typed)
	forms := []string{password}
	if typed != password {
		forms = append(forms, typed)
	}
	u, newHash, spent, err := s.verifyLogin(ctx, email, forms)
	if err == errBadCredentials {
		s.timing.pad(ctx, len(forms), spent)
	}
	return u, newHash, err
}

// verifyLogin is checkPassword but the padding; it also returns how long
// its verifications took.
func (s *Service) verifyLogin(ctx context.Context, email string, forms []string) (_ *models.User, newHash string, spent time.Duration, _ error) {
	u, err := models.UserByEmail(ctx, s.db, email)
	if models.ErrorCode(err) == models.NotFound {
		if err := s.pool.do(ctx, func() {
			for _, p := range forms {
				d, _, _, _ := s.verify(s.hasher.dummy, p)
				spent += d
			}
		}); err != nil {
			return nil, "", 0, err
		}
		return nil, "", spent, errBadCredentials
	} else if err != nil {
		return nil, "", 0, err
	}
	var ok, rehash bool
	if perr := s.pool.do(ctx, func() {
		for i, p := range forms {
			var d time.Duration
			d, ok, rehash, err = s.verify(u.PasswordHash, p)
			spent += d
			if ok || err != nil {
				rehash = rehash || i > 0 // a hash of the form typed, not NFC
				break
			}
		}
		if ok && rehash && err == nil {
			newHash, err = s.hasher.Hash(forms[0])
		}
	}); perr != nil {
		return u, "", 0, perr
	}
	if err != nil {
		s.log.ErrorContext(ctx, "password hash", "user", u.ID, "err", err)
		return u, "", spent, errBadCredentials
	}
	if !ok {
		return u, "", spent, errBadCredentials
	}
	return u, newHash, 0, nil
}

// verify is Hasher.Verify, on the caller's worker, timed: how long it took
// is recorded for failTiming and returned.
func (s *Service) verify(stored, password string) (d time.Duration, ok, rehash bool, err error) {
	start := time.Now()
	ok, rehash, err = s.hasher.Verify(stored, password)
	d = time.Since(start)
	class, _ := hashClass(stored)
	s.timing.record(class, d)
	return d, ok, rehash, err
}

// startSession creates a session for u and signs it in; login, when set,
// is stamped on the user in the same transaction. Past Config.MaxSessions
// the user's least recently used sessions end in that transaction too.
func (s *Service) startSession(ctx context.Context, u *models.User, login *models.LoginStamp) (*Grant, error) {
	ns, token := s.newSession(ctx, login)
	ns.Session.UserID = u.ID
	evicted, err := models.CreateSession(ctx, s.db, ns)
	if err != nil {
		return nil, err
	}
	s.sessionsEvicted(ctx, u.ID, evicted)
	return s.grant(ctx, u, ns.Session.ID, token, ns.Session.CreatedAt)
}

// newSession returns the rows of a new session starting now for the
// request's client (its UserID left for the caller) and its refresh token.
func (s *Service) newSession(ctx context.Context, login *models.LoginStamp) (*models.NewSession, string) {
	now, c := s.now(), ClientFrom(ctx)
	token, hash := newRefreshToken()
	accessExp := now.Add(s.cfg.AccessTTL)
	sess := &models.Session{
		ID:        uuid.NewString(),
		CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL),
		UserAgent: c.UserAgent, IP: c.IP,
		AccessExpiresAt: &accessExp,
	}
	rt := &models.RefreshToken{ID: hash, SessionID: sess.ID, CreatedAt: now, ExpiresAt: sess.ExpiresAt}
	return &models.NewSession{Session: sess, Token: rt, Login: login, Max: s.cfg.MaxSessions, Revoke: s.revocation(now)}, token
}

// sessionsEvicted finishes what ending the user's sessions for the session
// limit began in the database: their access tokens are refused here at
// once (the other replicas learn of it from the revocations' events), and
// each is audited, as revokeSession would, with the reason in the detail.
func (s *Service) sessionsEvicted(ctx context.Context, userID string, evicted []models.Revoked) {
	for _, r := range evicted {
		s.revs.add(r.Until, r.ID)
		s.audit(ctx, event{typ: models.AuditSessionRevoked, userID: userID, sessionID: r.ID, detail: "session limit"})
	}
}

// grant signs u's session in: a new access token, issued at `at` (the time
// its session recorded, see models.Session's AccessExpiresAt), with the
// refresh token, which also goes into the refresh cookie when cookie
// sessions are on.
func (s *Service) grant(ctx context.Context, u *models.User, sessionID, refreshToken string, at time.Time) (*Grant, error) {
	access, _, err := s.signer.issueAt(at, u.ID, sessionID, u.RoleNames(), s.cfg.AccessTTL)
	if err != nil {
		return nil, err
	}
	s.setRefreshCookie(ctx, refreshToken)
	return &Grant{AccessToken: access, RefreshToken: refreshToken, ExpiresIn: int(s.cfg.AccessTTL / time.Second), User: u, SessionID: sessionID}, nil
}

// Refresh exchanges a refresh token for a new pair in the same session,
// with the user's current roles, and sets the refresh cookie when cookie
// sessions are on (as Register and Login do). An already rotated token
// presented again gets a new pair within the reuse interval (tabs), and
// later too when none of its successors was ever used (a retry after a
// lost answer: the unused successors are spent); any other presentation
// of a superseded token revokes the session (see
// models.RotateRefreshToken). Every failure is Unauthenticated, except
// ServiceUnavailable while the audit log cannot take its record (see
// auditRoom) or the database is down.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (_ *Grant, err error) {
	if err := s.auditRoom(); err != nil {
		return nil, err
	}
	now := s.now()
	if _, err := s.take(ctx, now, []string{s.limitKey("refresh", ClientFrom(ctx).limitKey())}, []Rate{s.cfg.Limits.Refresh}); err != nil {
		return nil, err
	}
	var rot models.Rotation
	defer func() { s.auditRefresh(ctx, rot, err) }()
	if !wellFormedRefreshToken(refreshToken) {
		return nil, models.Errorf(models.Unauthenticated, "invalid or expired refresh token")
	}
	token, hash := newRefreshToken()
	// The rotation reads the clock itself, once it holds what it changes:
	// a refresh that waited for the database must not start its grace
	// interval, nor end its session, that much early.
	rot, err = models.RotateRefreshToken(ctx, s.db, models.Rotate{
		OldHash: hashRefreshToken(refreshToken), NewHash: hash, Now: s.now,
		TTL: s.cfg.RefreshTTL, AccessTTL: s.cfg.AccessTTL, ReuseInterval: s.cfg.ReuseInterval,
		Revoke: s.revocation(time.Time{}),
	})
	if err != nil {
		return nil, err
	}
	if rot.Reuse {
		// A superseded token presented again, neither concurrently with
		// its rotation nor as a retry, means two parties hold the
		// session's tokens: one of them stole it. Revoking the whole
		// session stops both, the thief included.
		s.revs.add(rot.RevokedUntil, rot.Session.ID)
		s.log.WarnContext(ctx, "refresh token reuse: session revoked", "session", rot.Session.ID, "ip", ClientFrom(ctx).IP)
		return nil, models.Errorf(models.Unauthenticated, "refresh token already used; the session has been revoked")
	}
	u, err := s.user(ctx, rot.Session.UserID)
	if err != nil {
		return nil, err
	}
	return s.grant(ctx, u.User, rot.Session.ID, token, rot.At)
}

// revocation describes a revocation made now: it lasts until every access
// token of the session has expired, clock skew included. The session
// records the latest expiry it issued; the current lifetime (now +
// AccessTTL) is the least, for sessions that recorded none (made before
// it was recorded, or by an older replica) and for a token issued by a
// rotation racing the revocation; a token issued under a longer lifetime
// before a restart must stay refused as long as it lives.
func (s *Service) revocation(now time.Time) models.Revoke {
	return models.Revoke{At: now, For: s.cfg.AccessTTL + MaxClockSkew, Skew: MaxClockSkew}
}

// revokeUntil is how long a revocation made now must be kept when nothing
// is known of the session's tokens: an event from a replica that did not
// say.
func (s *Service) revokeUntil(now time.Time) time.Time {
	return s.revocation(now).Until(nil)
}

// revokeOwn is how long the request's own session is refused here when
// its revocation was not made by this call (it had ended already): at
// least as long as the principal's token lives.
func (s *Service) revokeOwn(now time.Time, p *Principal) time.Time {
	exp := p.ExpiresAt
	return s.revocation(now).Until(&exp)
}

// Logout revokes the principal's session, or every session of its user,
// with their refresh and access tokens, and clears the refresh cookie when
// cookie sessions are on.
func (s *Service) Logout(ctx context.Context, p *Principal, allSessions bool) (err error) {
	now := s.now()
	sessionID, detail := p.SessionID, ""
	if allSessions {
		sessionID, detail = "", "all"
	}
	defer func() {
		s.audit(ctx, event{typ: models.AuditLogout, err: err, userID: p.UserID, sessionID: p.SessionID, detail: detail})
	}()
	revoked, err := models.RevokeSessions(ctx, s.db, p.UserID, sessionID, s.revocation(now))
	if err != nil {
		return err
	}
	for _, r := range revoked {
		s.revs.add(r.Until, r.ID)
	}
	// The caller's own session is revoked even if it was already, so that
	// its access token stops working on this replica at once.
	s.revs.add(s.revokeOwn(now, p), p.SessionID)
	s.clearRefreshCookie(ctx)
	return nil
}

// Authenticate verifies an access token and returns its principal. It
// returns Unauthenticated for an invalid, expired or revoked token, and
// ServiceUnavailable for every token while the service has been out of
// sync with other replicas for longer than Config.SyncTimeout.
func (s *Service) Authenticate(token string) (*Principal, error) {
	if s.sync.refusing() {
		// Another replica may have revoked this token, or changed its
		// user's roles, and this one cannot know: better no answer than
		// one that ignores a logout made elsewhere.
		return nil, errUnsynced
	}
	keyVersion := s.signer.keys.version()
	v, ok := s.tokens.get(token, keyVersion)
	if !ok {
		c, err := s.signer.Verify(token)
		if errors.Is(err, ErrTokenExpired) {
			return nil, errTokenExpired
		} else if err != nil {
			return nil, errTokenInvalid
		}
		v = verifiedToken{
			p:          &Principal{UserID: c.Subject, SessionID: c.SessionID, TokenID: c.ID, Roles: c.Roles, ExpiresAt: c.ExpiresAt.Time},
			keyVersion: keyVersion,
			keyUntil:   c.keyUntil,
		}
		s.tokens.put(token, v)
	} else if now := s.now(); now.After(v.p.ExpiresAt.Add(MaxClockSkew)) {
		// The same expiry, with the same leeway, that Verify applies.
		return nil, errTokenExpired
	} else if !v.keyUntil.IsZero() && now.After(v.keyUntil) {
		return nil, errTokenInvalid
	}
	p := v.p
	if s.revs.revoked(p.SessionID, p.TokenID) {
		return nil, models.Errorf(models.Unauthenticated, "access token revoked")
	}
	return p, nil
}

var (
	errTokenExpired = models.Errorf(models.Unauthenticated, "access token expired")
	errTokenInvalid = models.Errorf(models.Unauthenticated, "invalid access token")
)

// Authorize decides rule for the request in ctx. A role or permission is
// checked against the user's current roles (from the user cache), not the
// token's roles claim, so that a role granted or removed applies to the
// very next request rather than at the next refresh.
func (s *Service) Authorize(ctx context.Context, rule Rule) error {
	p, err := PrincipalFrom(ctx)
	if p == nil || (rule.Role == "" && rule.Permission == "") {
		return Authorize(p, err, rule, s.Grants)
	}
	u, err := s.user(ctx, p.UserID)
	if err != nil {
		return err
	}
	return rule.check(u.roles, s.Grants)
}

// Me returns the principal's user, from the user cache. It returns
// Unauthenticated if the user no longer exists.
func (s *Service) Me(ctx context.Context, p *Principal) (*models.User, error) {
	u, err := s.user(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	return u.User, nil
}

// SetUserRoles replaces a user's roles (names are case-insensitive). It
// returns NotFound for an unknown user and BadUserInput for an unknown role.
// The new roles apply to the user's next request (role checks read the
// user cache, dropped here); tokens' roles claim follows at their next
// refresh.
func (s *Service) SetUserRoles(ctx context.Context, userID string, roles []string) (u *models.User, err error) {
	names, err := roleNames(roles)
	if err != nil {
		return nil, err
	}
	if p, _ := PrincipalFrom(ctx); p != nil {
		// An admin's script failing in a loop must not write an audit row
		// per call (see limitFailures); operators at the CLI have no
		// principal and are not counted.
		done, lerr := s.limitFailures(ctx, p.UserID)
		if lerr != nil {
			return nil, lerr
		}
		defer func() { done(err) }()
	}
	defer func() { s.auditRoles(ctx, userID, names, u, err) }()
	if _, err := uuid.Parse(userID); err != nil {
		return nil, models.Errorf(models.NotFound, "user not found")
	}
	u, err = models.SetUserRoles(ctx, s.db, userID, names)
	s.forgetUser(userID) // even on error: the transaction's outcome may be unknown
	return u, err
}

// roleNames returns role names as stored (trimmed, lower case), or
// BadUserInput for a name that is not valid UTF-8 or holds a NUL, which no
// role has and PostgreSQL cannot even compare.
func roleNames(roles []string) ([]string, error) {
	names := make([]string, len(roles))
	for i, r := range roles {
		if !utf8.ValidString(r) || strings.IndexByte(r, 0) >= 0 {
			return nil, models.Errorf(models.BadUserInput, "a role name is not valid UTF-8 or contains a NUL character")
		}
		names[i] = strings.ToLower(strings.TrimSpace(r))
	}
	return names, nil
}

// ErrAdminEmailNotAdmin is EnsureAdmin's refusal to make an existing
// account an admin.
var ErrAdminEmailNotAdmin = errors.New("an account with this email exists and is not an admin")

// EnsureAdmin makes sure the admin of AUTH_ADMIN_EMAIL exists: when no
// account has the email, it creates one with the password and the roles
// admin and user; when one has and is an admin, it does nothing (the
// password stays the account's own).
//
// When the account exists but is not an admin, it returns
// ErrAdminEmailNotAdmin and changes nothing. Promoting it would give the
// admin role to whoever registered that email first, an attacker included
// (sign-up is open by default, and the configured email is no secret): the
// operator checks who owns the account, and grants the role explicitly
// (authql user roles) or configures another email.
func (s *Service) EnsureAdmin(ctx context.Context, email, password string) (err error) {
	defer models.Wrap(&err, "EnsureAdmin")
	key, err := models.NormalizeEmail(email)
	if err != nil {
		return err
	}
	u, err := models.UserByEmail(ctx, s.db, key)
	if models.ErrorCode(err) == models.NotFound {
		u, err = s.createUser(ctx, email, password, []string{models.RoleAdmin, models.RoleUser}, nil)
		if errors.Is(err, models.ErrEmailTaken) {
			// Created meanwhile: by another replica starting (then an
			// admin) or by a registration (then refused below).
			u, err = models.UserByEmail(ctx, s.db, key)
		} else if err == nil {
			s.audit(ctx, event{typ: models.AuditRegister, userID: u.ID, detail: strings.Join(u.RoleNames(), ",")})
			return nil
		}
	}
	if err != nil {
		return err
	}
	if !u.HasRole(models.RoleAdmin) {
		return ErrAdminEmailNotAdmin
	}
	return nil
}

// Users lists up to first users (models.DefaultPageSize when nil) after the
// cursor after (from the first user when nil), oldest first. It returns
// BadUserInput for first out of range or an invalid cursor.
func (s *Service) Users(ctx context.Context, first *int, after *string) ([]*models.User, error) {
	n, c, err := page(first, after)
	if err != nil {
		return nil, err
	}
	return models.Users(ctx, s.db, n, c)
}

// page reads a list's optional arguments: the page size (models'
// DefaultPageSize when nil; models checks its range) and the cursor to
// continue after, or BadUserInput for a cursor authql did not make.
func page(first *int, after *string) (int, *models.Cursor, error) {
	n := models.DefaultPageSize
	if first != nil {
		n = *first
	}
	if after == nil {
		return n, nil, nil
	}
	c, err := models.ParseCursor(*after)
	if err != nil {
		return 0, nil, err
	}
	return n, &c, nil
}

// Permissions returns what u's roles grant, sorted and without duplicates.
// It reads the role permissions kept in memory, so listing many users with
// their permissions costs no query per user.
func (s *Service) Permissions(u *models.User) []string {
	perms := []string{} // never null: the field is [String!]!
	for _, r := range u.Roles {
		perms = append(perms, s.Grants(r.Name)...)
	}
	slices.Sort(perms)
	return slices.Compact(perms)
}

// Roles lists every role with its permissions.
func (s *Service) Roles(ctx context.Context) ([]*models.Role, error) { return models.Roles(ctx, s.db) }

// Purge deletes expired revocations, refresh tokens and sessions, and
// audit events older than Config.AuditRetention, and re-reads revocations
// and role permissions.
func (s *Service) Purge(ctx context.Context) error {
	now := s.now()
	// A revoked session is kept while an access token of its could live:
	// past the current lifetime and past the latest expiry it issued.
	p, err := models.PurgeExpired(ctx, s.db, now, now.Add(-(s.cfg.AccessTTL + MaxClockSkew)), now.Add(-MaxClockSkew))
	if err != nil {
		return err
	}
	audits, err := s.purgeAudit(ctx, now)
	if err != nil {
		return err
	}
	if p != (models.Purged{}) || audits > 0 {
		s.log.InfoContext(ctx, "purged expired rows", "revocations", p.Revocations, "refresh_tokens", p.RefreshTokens, "sessions", p.Sessions, "rate_limits", p.RateLimits, "audit_events", audits)
	}
	if m, ok := s.limiter.(*memoryLimiter); ok {
		m.Sweep(now)
	}
	s.tokens.sweep(now)
	if n, err := models.WipeRetiredKeys(ctx, s.db, now.Add(-(retiredKeyGrace + s.cfg.AccessTTL + MaxClockSkew))); err != nil {
		return err
	} else if n > 0 {
		s.log.InfoContext(ctx, "erased private material of retired signing keys", "keys", n)
	}
	return s.Reload(ctx)
}

// purgeTimeout is the deadline of each of the purge's statements, longer
// than AUTH_DB_TIMEOUT: no client waits for it, and after an outage it
// may have a backlog of expired rows to delete.
const purgeTimeout = time.Minute

// RunPurge calls Purge every interval until ctx is done.
func (s *Service) RunPurge(ctx context.Context, interval time.Duration) {
	runEvery(models.WithTimeout(ctx, purgeTimeout), interval, s.log, "purge", s.Purge)
}

// runEvery calls f every interval until ctx is done, logging its failures
// as "<what> failed".
func runEvery(ctx context.Context, interval time.Duration, log *slog.Logger, what string, f func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := f(ctx); err != nil && ctx.Err() == nil {
				log.ErrorContext(ctx, what+" failed", "err", err)
			}
		}
	}
}

// checkPasswordBytes returns BadUserInput for a password over
// MaxPasswordBytes, or one that is not valid UTF-8 or holds a NUL: no one
// types those, and the forms of such a password are not well defined (a
// JSON decoder or a terminal may turn invalid bytes into U+FFFD, making
// different passwords one). It is checked before any hashing.
func checkPasswordBytes(p string) error {
	switch {
	case len(p) > MaxPasswordBytes:
		return models.Errorf(models.BadUserInput, "password must be at most %d bytes", MaxPasswordBytes)
	case !utf8.ValidString(p):
		return models.Errorf(models.BadUserInput, "password is not valid UTF-8")
	case strings.IndexByte(p, 0) >= 0:
		return models.Errorf(models.BadUserInput, "password contains a NUL character")
	}
	return nil
}

// newPassword returns the form a new password is hashed in, NFC, or
// BadUserInput unless it passes checkPasswordBytes and has at least
// MinPasswordRunes characters. Every password set (register, user add, the
// admin of AUTH_ADMIN_EMAIL, any later change) goes through it.
func newPassword(p string) (string, error) {
	if err := checkPasswordBytes(p); err != nil {
		return "", err
	}
	p = norm.NFC.String(p)
	if utf8.RuneCountInString(p) < MinPasswordRunes {
		return "", models.Errorf(models.BadUserInput, "password must be at least %d characters", MinPasswordRunes)
	}
	return p, nil
}
