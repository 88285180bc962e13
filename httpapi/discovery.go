package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/authql/authql/auth"
)

// Paths of the public documents.
const (
	JWKSPath      = "/.well-known/jwks.json"
	DiscoveryPath = "/.well-known/oauth-authorization-server"
)

// JWKSMaxAge is how long the JWKS may be cached. A key rotated in with
// `keys rotate --activate-in 5m` (the lead the README asks for) is
// published at once on PostgreSQL and within keys.ReloadInterval (30 s)
// on SQLite; a relying party whose cached copy is JWKSMaxAge old at that
// moment fetches the new set before the key signs: 4m + 30s < 5m
// (TestJWKSMaxAgeBelowRotationLead). A key rotated in at once is an
// unknown kid, which relying parties refetch for.
const JWKSMaxAge = 4 * time.Minute

// DiscoveryMaxAge is how long the discovery document may be cached: it
// changes only with the configuration (and the roles' permissions).
const DiscoveryMaxAge = 5 * time.Minute

// jwksHandler serves the public keys, for anyone (CORS *): they are the
// same for every caller and secret to none.
func jwksHandler(svc *auth.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		servePublic(w, r, svc.Keys().JWKS(), JWKSMaxAge, "")
	}
}

// servePublic answers a public JSON document with a strong ETag over its
// bytes (304 to a matching If-None-Match), Cache-Control max-age and
// Access-Control-Allow-Origin: * (a browser app may read it: nothing in it
// is secret, and no credentials are involved). vary, when not "", is the
// Vary header.
func servePublic(w http.ResponseWriter, r *http.Request, body []byte, maxAge time.Duration, vary string) {
	sum := sha256.Sum256(body)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(maxAge/time.Second)))
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("X-Content-Type-Options", "nosniff")
	if vary != "" {
		h.Set("Vary", vary)
	}
	if noneMatch(r.Header.Values("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	w.Write(body)
}

// noneMatch reports whether the If-None-Match field values match etag:
// "*", or a list of entity tags one of which is etag by the weak
// comparison RFC 9110 §13.1.2 prescribes for If-None-Match (W/"x"
// matches "x"). A malformed list matches nothing: the full answer is
// always safe.
func noneMatch(values []string, etag string) bool {
	for _, v := range values {
		for v = strings.TrimLeft(v, " \t,"); v != ""; v = strings.TrimLeft(v, " \t,") {
			if v[0] == '*' {
				return true
			}
			v = strings.TrimPrefix(v, "W/")
			if v == "" || v[0] != '"' {
				return false
			}
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				return false
			}
			if v[:end+2] == etag {
				return true
			}
			v = v[end+2:]
		}
	}
	return false
}

// discovery is the authorization server metadata (RFC 8414) authql
// publishes, with its own fields for what a GraphQL resource server needs.
type discovery struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
	// ResponseTypesSupported is REQUIRED by RFC 8414 §2, and names the
	// response types of an authorization endpoint. authql has none (it
	// signs in through GraphQL), so the true answer is the empty list,
	// not a response type it would refuse.
	ResponseTypesSupported []string `json:"response_types_supported"`
	// ScopesSupported are the permissions, the values of tokens' scope.
	ScopesSupported []string `json:"scopes_supported"`
	GraphQLEndpoint string   `json:"graphql_endpoint"`
	EventsEndpoint  string   `json:"events_endpoint"`
	// ClientID and Audience are what authql's own access tokens carry as
	// client_id and aud, so that a service configures its verifier from
	// this document alone. (No token_endpoint_auth_methods_supported: with
	// no token endpoint there are no methods, and RFC 8414's default,
	// client_secret_basic, would say otherwise.)
	ClientID string `json:"authql_client_id"`
	Audience string `json:"authql_audience"`
}

// discoveryHandler serves the metadata document, its URLs built on
// publicURL (AUTH_PUBLIC_URL) or, without one (never in production), on
// the request's own scheme and host.
func discoveryHandler(publicURL string, svc *auth.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		base, vary := publicURL, ""
		if base == "" {
			var ok bool
			if base, ok = requestBase(r, svc.FromTrustedProxy(r)); !ok {
				writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", "the Host header is not a host name")
				return
			}
			vary = "X-Forwarded-Proto"
		}
		md := svc.Metadata()
		body, _ := json.Marshal(discovery{ // cannot fail: strings only
			Issuer: md.Issuer, JWKSURI: base + JWKSPath,
			ResponseTypesSupported: []string{}, ScopesSupported: md.Scopes,
			GraphQLEndpoint: base + "/query", EventsEndpoint: base + "/events",
			ClientID: md.ClientID, Audience: md.Audience,
		})
		servePublic(w, r, body, DiscoveryMaxAge, vary)
	}
}

// requestBase is the base URL the request was made to: its scheme (the
// X-Forwarded-Proto of a trusted proxy, else whether the connection is
// TLS) and its Host, which must be a host name or address with an
// optional port and nothing else.
func requestBase(r *http.Request, trustedProxy bool) (string, bool) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if trustedProxy {
		// Only a proxy authql trusts may say how the client connected;
		// a client's own header would pick the scheme of the URLs the
		// document hands out.
		switch p := strings.ToLower(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto"))); p {
		case "http", "https":
			scheme = p
		}
	}
	u, err := url.Parse(scheme + "://" + r.Host)
	if err != nil || r.Host == "" || u.Host != r.Host || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	return scheme + "://" + r.Host, true
}

// writeJSONError answers a request outside GraphQL with an error shaped
// like GraphQL's.
func writeJSONError(w http.ResponseWriter, status int, code, message string) {
	body, _ := json.Marshal(map[string]any{"errors": []any{map[string]any{"message": message, "extensions": map[string]any{"code": code}}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}
