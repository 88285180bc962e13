package httpapi

import (
	"net/http/httptest"
	"testing"
)

// TestRequestBase: the discovery document's base from the request, and
// the Host values refused (the document would carry them to every cache).
func TestRequestBase(t *testing.T) {
	for _, c := range []struct {
		host, proto string
		trusted     bool
		want        string
		ok          bool
	}{
		{"auth.example.com", "", false, "http://auth.example.com", true},
		{"auth.example.com:8443", "https", true, "https://auth.example.com:8443", true},
		{"[::1]:8080", "HTTPS", true, "https://[::1]:8080", true},
		{"auth.example.com", "https", false, "http://auth.example.com", true},
		{"auth.example.com", "gopher", true, "http://auth.example.com", true},
		{"evil.example/path", "", false, "", false},
		{"user@evil.example", "", false, "", false},
		{"evil.example?q", "", false, "", false},
		{"evil.example#f", "", false, "", false},
		{"", "", false, "", false},
	} {
		r := httptest.NewRequest("GET", "/.well-known/oauth-authorization-server", nil)
		r.Host = c.host
		if c.proto != "" {
			r.Header.Set("X-Forwarded-Proto", c.proto)
		}
		got, ok := requestBase(r, c.trusted)
		if got != c.want || ok != c.ok {
			t.Errorf("Host %q, proto %q, trusted %v: %q %v, want %q %v", c.host, c.proto, c.trusted, got, ok, c.want, c.ok)
		}
	}
}

// TestNoneMatch: If-None-Match by RFC 9110's weak comparison, lists
// (several fields too), and malformed lists matching nothing.
func TestNoneMatch(t *testing.T) {
	const etag = `"abc"`
	for _, c := range []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{`"abc"`}, true},
		{[]string{`W/"abc"`}, true},
		{[]string{`"x", "abc"`}, true},
		{[]string{`"x",W/"abc"`}, true},
		{[]string{`"x"`, `"abc"`}, true},
		{[]string{`*`}, true},
		{[]string{`"abcd"`}, false},
		{[]string{`"ab"`}, false},
		{[]string{`abc`}, false},
		{[]string{`"abc`}, false},
		{[]string{`W/`}, false},
		{[]string{``}, false},
		{[]string{`"a,b", "abc"`}, true},
	} {
		if got := noneMatch(c.values, etag); got != c.want {
			t.Errorf("noneMatch(%q) = %v, want %v", c.values, got, c.want)
		}
	}
}
