// Names for the tests only: production signs through a Set opened on the
// key store, at the time its session records (Signer.IssueAt).

package keys

import "time"

// NewSigner returns a Signer for one fixed HS256 key, which must be at
// least MinSecretLen bytes.
func NewSigner(key []byte, issuer, audience string, now func() time.Time) (*Signer, error) {
	k, err := newKey(AlgHS256, key)
	if err != nil {
		return nil, err
	}
	ks := &Set{byKID: map[string]*signingKey{k.kid: k}, keys: []*signingKey{k}, now: time.Now}
	if now != nil {
		ks.now = now
	}
	return ks.Signer(issuer, audience, now), nil
}

// Issue is IssueAt now.
func (s *Signer) Issue(userID, sessionID string, roles []string, ttl time.Duration) (string, *Claims, error) {
	return s.IssueAt(s.now(), Subject{UserID: userID, SessionID: sessionID, Roles: roles}, ttl)
}

// CurrentKID returns the kid of the key signing now, or "".
func (ks *Set) CurrentKID() string { return (&Signer{keys: ks}).KeyID() }
