package auth

import (
	"sync"
	"time"
)

// maxVerifiedTokens bounds the cache of verified access tokens. A frontend
// sends the same token with every request for its whole lifetime, so a
// small cache serves nearly every request; each entry is about 1 KB.
const maxVerifiedTokens = 16384

// tokenCache remembers access tokens whose signature and claims were
// verified, keyed by the exact token text: parsing the JSON of a JWT again
// on every request was a third of the server's CPU per request. Only what
// verification decided once and for all is reused: expiry, the verifying
// key's window and revocation are checked on every request, and an entry
// counts only for the key set version it was verified under, so any change
// of keys re-verifies.
type tokenCache struct {
	mu     sync.RWMutex
	tokens map[string]verifiedToken
}

type verifiedToken struct {
	p          *Principal // shared: never modified
	keyVersion uint64
	keyUntil   time.Time // end of the verifying key's window; zero: none
}

func newTokenCache() *tokenCache {
	return &tokenCache{tokens: make(map[string]verifiedToken)}
}

func (c *tokenCache) get(token string, keyVersion uint64) (verifiedToken, bool) {
	c.mu.RLock()
	v, ok := c.tokens[token]
	c.mu.RUnlock()
	return v, ok && v.keyVersion == keyVersion
}

func (c *tokenCache) put(token string, v verifiedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.tokens) >= maxVerifiedTokens {
		// Drop an arbitrary entry (map order is random): an evicted token
		// is verified again at its next use.
		for k := range c.tokens {
			delete(c.tokens, k)
			break
		}
	}
	c.tokens[token] = v
}

// sweep drops the tokens expired by now.
func (c *tokenCache) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.tokens {
		if now.After(v.p.ExpiresAt.Add(MaxClockSkew)) {
			delete(c.tokens, k)
		}
	}
}
