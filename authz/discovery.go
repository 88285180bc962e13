package authz

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the documents read from authql: a compromised or confused
// server (or a proxy in between) cannot make this service hold more.
const (
	maxDocumentBytes = 1 << 20
	fetchTimeout     = 10 * time.Second
	// The JWKS's Cache-Control max-age is honoured within these bounds:
	// not refetched more often than a minute (a max-age=0 would mean a
	// fetch per request), nor kept longer than an hour (a key removed from
	// authql's set must stop verifying here too).
	minKeysMaxAge     = time.Minute
	maxKeysMaxAge     = time.Hour
	defaultKeysMaxAge = 5 * time.Minute
	// unknownKIDInterval: a token naming a kid not in the cached set
	// refetches the JWKS (it may be a key just rotated in), at most this
	// often, so that tokens with made-up kids cannot make this service
	// hammer authql.
	unknownKIDInterval = 5 * time.Second
	maxKIDLen          = 128
)

// metadata is what authz reads of authql's discovery document (RFC 8414).
type metadata struct {
	Issuer          string `json:"issuer"`
	JWKSURI         string `json:"jwks_uri"`
	GraphQLEndpoint string `json:"graphql_endpoint"`
	EventsEndpoint  string `json:"events_endpoint"`
}

// discover reads the discovery document of v's issuer.
func (v *Verifier) discover(ctx context.Context) (metadata, error) {
	where := trimIssuer(v.cfg.Issuer) + "/.well-known/oauth-authorization-server"
	var m metadata
	body, _, err := v.get(ctx, where, "")
	if err == nil {
		err = json.Unmarshal(body, &m)
	}
	if err != nil {
		return m, fmt.Errorf("authz: discovery document %s: %w", where, err)
	}
	// RFC 8414 §3.3: the issuer in the document must be the one it was
	// read for, else a document served elsewhere could name keys that
	// are not authql's.
	if m.Issuer != v.cfg.Issuer {
		return m, fmt.Errorf("authz: discovery document %s names issuer %q, want %q (set authql's AUTH_ISSUER to its public URL)", where, m.Issuer, v.cfg.Issuer)
	}
	for _, u := range []string{m.JWKSURI, m.EventsEndpoint} {
		if p, err := url.Parse(u); u != "" && (err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "") {
			return m, fmt.Errorf("authz: discovery document %s: %q is not an absolute http(s) URL", where, u)
		}
	}
	if m.JWKSURI == "" {
		return m, fmt.Errorf("authz: discovery document %s has no jwks_uri", where)
	}
	return m, nil
}

// get fetches a document of at most maxDocumentBytes; with etag set, a 304
// answer returns a nil body and no error.
func (v *Verifier) get(ctx context.Context, u, etag string) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if etag != "" && resp.StatusCode == http.StatusNotModified {
		return nil, resp.Header, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err == nil && len(body) > maxDocumentBytes {
		err = errors.New("document too large")
	}
	return body, resp.Header, err
}

// verifyKey is a public key of the JWKS with the one algorithm it verifies.
type verifyKey struct {
	alg string
	pub any
}

// keySet is the JWKS's keys by kid, refetched when its max-age has passed
// and, throttled, for an unknown kid. A failed fetch keeps the last good set.
type keySet struct {
	v   *Verifier
	uri string

	mu      sync.RWMutex
	byKID   map[string]verifyKey
	expires time.Time // on v's clock: when the set is to be refetched

	fetchMu   sync.Mutex // one fetch at a time; others wait for its outcome
	etag      string
	lastMiss  time.Time // wall clock: the throttle protects authql
	nextTryAt time.Time // wall clock: after a failed fetch

	refreshing atomic.Bool // a background refetch is running
}

func newKeySet(v *Verifier, uri string) *keySet { return &keySet{v: v, uri: uri} }

// lookup returns the key named kid. A known kid is answered at once from
// the cached set, even a stale one: its refetch runs in the background,
// one at a time, so that a slow or hung authql delays no verification. An
// unknown kid (a key just rotated in) waits for a refetch, at most one per
// unknownKIDInterval.
func (ks *keySet) lookup(ctx context.Context, kid string) (verifyKey, bool) {
	ks.mu.RLock()
	k, ok := ks.byKID[kid]
	stale := ks.v.cfg.Now().After(ks.expires)
	ks.mu.RUnlock()
	if stale {
		ks.refreshInBackground()
	}
	if ok || kid == "" || len(kid) > maxKIDLen {
		return k, ok
	}
	ks.fetchMu.Lock()
	defer ks.fetchMu.Unlock()
	ks.mu.RLock()
	k, ok = ks.byKID[kid]
	ks.mu.RUnlock()
	now := time.Now()
	if ok || now.Before(ks.nextTryAt) || now.Sub(ks.lastMiss) < unknownKIDInterval {
		return k, ok
	}
	ks.lastMiss = now
	// Not cancelled with the request: the fetch serves every request
	// waiting for it.
	ks.fetchLogged(context.WithoutCancel(ctx))
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	k, ok = ks.byKID[kid]
	return k, ok
}

// refreshInBackground starts a refetch of a stale set unless one is
// running; it ends with the Verifier (Close).
func (ks *keySet) refreshInBackground() {
	if !ks.refreshing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer ks.refreshing.Store(false)
		ks.fetchMu.Lock()
		defer ks.fetchMu.Unlock()
		ks.mu.RLock()
		stale := ks.v.cfg.Now().After(ks.expires)
		ks.mu.RUnlock()
		if stale && !time.Now().Before(ks.nextTryAt) {
			ks.fetchLogged(ks.v.runCtx)
		}
	}()
}

// fetchLogged fetches the set; a failure keeps the last good set, is
// logged, and holds further tries off for unknownKIDInterval. fetchMu is
// held.
func (ks *keySet) fetchLogged(ctx context.Context) {
	if err := ks.fetch(ctx); err != nil {
		ks.nextTryAt = time.Now().Add(unknownKIDInterval)
		ks.v.log.ErrorContext(ctx, "authz: JWKS fetch failed; keeping the last key set", "url", ks.uri, "err", err)
	}
}

// refresh fetches the set (New's first fetch).
func (ks *keySet) refresh(ctx context.Context) error {
	ks.fetchMu.Lock()
	defer ks.fetchMu.Unlock()
	return ks.fetch(ctx)
}

// fetch reads the JWKS (conditionally, by ETag) and replaces the set;
// fetchMu is held.
func (ks *keySet) fetch(ctx context.Context) error {
	body, h, err := ks.v.get(ctx, ks.uri, ks.etag)
	if err != nil {
		return err
	}
	expires := ks.v.cfg.Now().Add(maxAge(h.Get("Cache-Control")))
	if body == nil { // 304: the set is unchanged
		ks.mu.Lock()
		ks.expires = expires
		ks.mu.Unlock()
		return nil
	}
	byKID, err := parseJWKS(body)
	if err != nil {
		return err
	}
	ks.etag = h.Get("ETag")
	ks.mu.Lock()
	ks.byKID, ks.expires = byKID, expires
	ks.mu.Unlock()
	return nil
}

// maxAge is a Cache-Control header's max-age within the bounds.
func maxAge(cc string) time.Duration {
	d := defaultKeysMaxAge
	for _, dir := range strings.Split(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
		if strings.EqualFold(name, "max-age") {
			if n, err := strconv.Atoi(strings.Trim(val, `"`)); err == nil && n >= 0 {
				d = time.Duration(n) * time.Second
			}
		}
	}
	return min(max(d, minKeysMaxAge), maxKeysMaxAge)
}

// jwk is a public key as RFC 7517 writes it: OKP Ed25519 (RFC 8037) and
// EC P-256 (RFC 7518 §6.2), the keys authql publishes.
type jwk struct {
	Kty, Crv, X, Y, Kid, Alg, Use string
}

// parseJWKS returns the usable keys of a JWKS by kid. Keys of other types,
// for another use, or whose alg disagrees with their type are left out.
func parseJWKS(body []byte) (map[string]verifyKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, err
	}
	if set.Keys == nil {
		return nil, errors.New(`no "keys" array`)
	}
	out := make(map[string]verifyKey, len(set.Keys))
	for _, j := range set.Keys {
		if j.Kid == "" || (j.Use != "" && j.Use != "sig") {
			continue
		}
		if k, ok := j.key(); ok && (j.Alg == "" || j.Alg == k.alg) {
			out[j.Kid] = k
		}
	}
	return out, nil
}

// key decodes j; the key's type decides its algorithm, never a token.
func (j jwk) key() (verifyKey, bool) {
	x, errX := base64.RawURLEncoding.DecodeString(j.X)
	switch {
	case errX != nil:
	case j.Kty == "OKP" && j.Crv == "Ed25519" && len(x) == ed25519.PublicKeySize:
		return verifyKey{alg: "EdDSA", pub: ed25519.PublicKey(x)}, true
	case j.Kty == "EC" && j.Crv == "P-256" && len(x) == 32:
		y, err := base64.RawURLEncoding.DecodeString(j.Y)
		if err != nil || len(y) != 32 {
			break
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err == nil {
			return verifyKey{alg: "ES256", pub: pub}, true
		}
	}
	return verifyKey{}, false
}
