package auth

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// Several fields of one document may set the cookie at the same time: the
// response must still carry exactly one Set-Cookie, one of theirs, and the
// race detector must find nothing.
func TestCookieSetConcurrent(t *testing.T) {
	w := httptest.NewRecorder()
	c := &cookieState{w: w}
	s := &Service{}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { c.set(s.refreshCookie("token"+strconv.Itoa(i), 60)) })
	}
	wg.Wait()
	lines := w.Header().Values("Set-Cookie")
	if len(lines) != 1 || lines[0] != c.sent {
		t.Fatalf("Set-Cookie = %q, want exactly the last one set (%q)", lines, c.sent)
	}
	if ck, err := http.ParseSetCookie(lines[0]); err != nil || ck.Name != CookieName {
		t.Errorf("Set-Cookie %q: %v", lines[0], err)
	}
}
