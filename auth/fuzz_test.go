package auth

import (
	"strings"
	"testing"
)

// FuzzBearerToken checks the Authorization header parser on arbitrary
// headers: it never panics, it accepts exactly the headers of the form
// "Bearer <token>" (scheme case-insensitive, one space, then a token that is
// not blank), and what it returns is that token, trimmed.
func FuzzBearerToken(f *testing.F) {
	for _, h := range []string{
		"Bearer abc.def.ghi", "bearer abc", "BEARER abc", "bEaReR abc",
		"Bearer  abc  ", "Bearer", "Bearer ", "Bearer   ", "Bearer\tabc", "Bearer\u00a0abc",
		"Bearerabc", " Bearer abc", "Basic dXNlcjpwYXNz", "Bearer a b c", "Bearer \x00",
		"Bearer \u2028abc\u2028", "Bear abc", "Bearer\u0130 abc", "", "Bearer Bearer abc",
	} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		token, ok := bearerToken(h)

		// The oracle, written independently of the parser.
		const scheme = "Bearer "
		wantOK := len(h) > len(scheme) && strings.EqualFold(h[:len(scheme)], scheme) &&
			strings.TrimSpace(h[len(scheme):]) != ""
		if ok != wantOK {
			t.Fatalf("bearerToken(%q) ok = %v, want %v", h, ok, wantOK)
		}
		if !ok {
			if token != "" {
				t.Errorf("bearerToken(%q) refused but returned %q", h, token)
			}
			return
		}
		if token == "" || token != strings.TrimSpace(token) {
			t.Errorf("bearerToken(%q) = %q: empty or not trimmed", h, token)
		}
		if want := strings.TrimSpace(h[len(scheme):]); token != want {
			t.Errorf("bearerToken(%q) = %q, want %q", h, token, want)
		}
	})
}
