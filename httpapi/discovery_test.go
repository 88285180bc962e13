package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/auth/keys"
	"github.com/authql/authql/httpapi"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/internal/testdb"
)

// get fetches url with headers and returns the response and its body.
func get(t *testing.T, url string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// discoveryDoc is the part of the discovery document the tests read.
type discoveryDoc struct {
	Issuer                 string    `json:"issuer"`
	JWKSURI                string    `json:"jwks_uri"`
	GraphQLEndpoint        string    `json:"graphql_endpoint"`
	EventsEndpoint         string    `json:"events_endpoint"`
	ResponseTypesSupported *[]string `json:"response_types_supported"`
	ScopesSupported        []string  `json:"scopes_supported"`
	ClientID               string    `json:"authql_client_id"`
	Audience               string    `json:"authql_audience"`
}

func discover(t *testing.T, base string, headers map[string]string) (discoveryDoc, *http.Response) {
	t.Helper()
	resp, body := get(t, base+httpapi.DiscoveryPath, headers)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET discovery: %d %s", resp.StatusCode, body)
	}
	var d discoveryDoc
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("discovery %s: %v", body, err)
	}
	return d, resp
}

// TestDiscovery: the RFC 8414 document names the issuer, the JWKS, the
// GraphQL endpoint and the revocation feed by absolute URLs: from
// AUTH_PUBLIC_URL when set, else from the request (the scheme from
// X-Forwarded-Proto only through a trusted proxy); anyone may read it.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		t.Run("FromTheRequest", func(t *testing.T) {
			ts := authtest.NewServer(t, dsn, nil)
			d, resp := discover(t, ts.URL, map[string]string{"X-Forwarded-Proto": "https"})
			want := discoveryDoc{
				Issuer: "authql", JWKSURI: ts.URL + "/.well-known/jwks.json", GraphQLEndpoint: ts.URL + "/query", EventsEndpoint: ts.URL + "/events",
				ClientID: "authql", Audience: "authql",
			}
			if d.Issuer != want.Issuer || d.JWKSURI != want.JWKSURI || d.GraphQLEndpoint != want.GraphQLEndpoint || d.EventsEndpoint != want.EventsEndpoint ||
				d.ClientID != want.ClientID || d.Audience != want.Audience {
				t.Errorf("document %+v, want %+v (X-Forwarded-Proto of an untrusted client ignored)", d, want)
			}
			if d.ResponseTypesSupported == nil || len(*d.ResponseTypesSupported) != 0 {
				t.Errorf("response_types_supported = %v, want [] (REQUIRED by RFC 8414; no authorization endpoint)", d.ResponseTypesSupported)
			}
			if !slices.Equal(d.ScopesSupported, []string{"events:read", "roles:read", "users:read", "users:write"}) {
				t.Errorf("scopes_supported = %q, want the roles' permissions", d.ScopesSupported)
			}
			h := resp.Header
			if h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Cache-Control") != "public, max-age=300" ||
				h.Get("Vary") != "X-Forwarded-Proto" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Errorf("headers %v", h)
			}
			if resp, _ := get(t, d.JWKSURI, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("GET jwks_uri: %d", resp.StatusCode)
			}
		})
		t.Run("TrustedProxyScheme", func(t *testing.T) {
			ts := authtest.NewServer(t, dsn, nil, loopbackProxy)
			d, _ := discover(t, ts.URL, map[string]string{"X-Forwarded-Proto": "https"})
			if host := strings.TrimPrefix(ts.URL, "http://"); d.GraphQLEndpoint != "https://"+host+"/query" {
				t.Errorf("graphql_endpoint = %q, want https://%s/query", d.GraphQLEndpoint, host)
			}
		})
		t.Run("PublicURL", func(t *testing.T) {
			ts := authtest.NewServer(t, dsn, nil, func(c *authtest.Config) {
				c.HTTP.PublicURL = "https://auth.example.com/base"
				c.Auth.Issuer, c.Auth.ClientID = "https://auth.example.com/base", "web"
			})
			d, resp := discover(t, ts.URL, map[string]string{"Host": "evil.example"})
			if d.Issuer != "https://auth.example.com/base" || d.JWKSURI != "https://auth.example.com/base/.well-known/jwks.json" ||
				d.GraphQLEndpoint != "https://auth.example.com/base/query" || d.EventsEndpoint != "https://auth.example.com/base/events" || d.ClientID != "web" {
				t.Errorf("document %+v, want every URL on AUTH_PUBLIC_URL", d)
			}
			if v := resp.Header.Get("Vary"); v != "" {
				t.Errorf("Vary = %q, want none: the document does not depend on the request", v)
			}
		})
	})
}

// TestJWKSCaching: the JWKS has a strong ETag over its bytes, answers 304
// to If-None-Match naming it (alone, in a list, weak, or *), 200 to any
// other, and a new one once a key is added; anyone may read it, and its
// max-age lets caches fetch a key rotated in with the README's lead.
func TestJWKSCaching(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		ts := authtest.NewServer(t, dsn, nil, authtest.WithAlg(keys.AlgEdDSA))
		resp, body := get(t, ts.URL+httpapi.JWKSPath, nil)
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
			t.Fatalf("GET: %d, ETag %q, want 200 with a strong ETag", resp.StatusCode, etag)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Cache-Control") != "public, max-age=240" {
			t.Errorf("headers %v", resp.Header)
		}
		for _, c := range []struct {
			name, inm string
			want      int
		}{
			{"Exact", etag, http.StatusNotModified},
			{"InAList", `"other", ` + etag, http.StatusNotModified},
			{"Weak", "W/" + etag, http.StatusNotModified},
			{"Star", "*", http.StatusNotModified},
			{"Other", `"other"`, http.StatusOK},
			{"Unquoted", strings.Trim(etag, `"`), http.StatusOK},
		} {
			t.Run(c.name, func(t *testing.T) {
				resp, got := get(t, ts.URL+httpapi.JWKSPath, map[string]string{"If-None-Match": c.inm})
				if resp.StatusCode != c.want {
					t.Fatalf("If-None-Match %s: %d, want %d", c.inm, resp.StatusCode, c.want)
				}
				if resp.Header.Get("ETag") != etag || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
					t.Errorf("headers %v, want the ETag and CORS on every answer", resp.Header)
				}
				if c.want == http.StatusOK && string(got) != string(body) {
					t.Errorf("body %s, want %s", got, body)
				}
				if c.want == http.StatusNotModified && len(got) != 0 {
					t.Errorf("304 with a body %q", got)
				}
			})
		}
		rotate(t, ts, keys.AlgEdDSA, 10*time.Minute)
		resp, _ = get(t, ts.URL+httpapi.JWKSPath, map[string]string{"If-None-Match": etag})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == etag {
			t.Errorf("after a rotation: %d, ETag %q, want 200 with a new ETag", resp.StatusCode, resp.Header.Get("ETag"))
		}
	})
}

// TestJWKSMaxAgeBelowRotationLead: a cache holding the JWKS for its whole
// max-age, from a replica that learns of a rotation only at its next
// reload, still has the new key before it signs when the rotation gives
// the lead the README asks for (--activate-in 5m).
func TestJWKSMaxAgeBelowRotationLead(t *testing.T) {
	const readmeLead = 5 * time.Minute
	if httpapi.JWKSMaxAge+keys.ReloadInterval >= readmeLead {
		t.Errorf("JWKS max-age %s + reload %s is not below the rotation lead %s", httpapi.JWKSMaxAge, keys.ReloadInterval, readmeLead)
	}
}
