package main

// Attack tests of issue 10 §2 (nothing one account or one client does can
// starve the others) and §3's atomic register, over real HTTP on SQLite
// and (with TEST_DATABASE_URL) PostgreSQL. They assert counts of rows,
// events, answers and log lines, never times.

import (
	"fmt"
	"testing"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// TestSessionLimitReachesReplicas: a session ended for the limit on one
// replica is refused on another, pushed as a logout is.
func TestSessionLimitReachesReplicas(t *testing.T) {
	c := newCluster(t, map[string]string{"AUTH_MAX_SESSIONS": "2"})
	a, b := c.start(t, nil), c.start(t, nil)
	first := registerAt(t, a, "ada@example.com", "password1")
	if code, msg := meError(t, b, first.Access); code != "" {
		t.Fatalf("me at B: %s %s", code, msg)
	}
	loginAt(t, b, "ada@example.com", "password1")
	loginAt(t, a, "ada@example.com", "password1")
	waitRevoked(t, b, first.Access)
}

// TestCookieOriginRefusalsCoalesced floods refresh-by-cookie requests from
// origins that are not allowed: they count against the refresh limit
// before the Origin is looked at, and their warnings are coalesced into a
// line per client with a count.
func TestCookieOriginRefusalsCoalesced(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		var logs syncBuffer
		url, stop := startRunLogging(t, map[string]string{
			"DATABASE_URL":         dsn,
			"AUTH_REFRESH_COOKIE":  "true",
			"AUTH_CORS_ORIGINS":    appOrigin,
			"AUTH_REFRESH_LIMIT":   "40/1m",
			"AUTH_TRUSTED_PROXIES": "127.0.0.1,::1",
		}, &logs)
		r := postGraphQL(t, url, map[string]string{"Origin": appOrigin}, registerDoc, creds("ada@example.com")).OK(t)
		c, _ := setCookie(t, r)
		refresh := func(ip, origin string) string {
			h := map[string]string{"Origin": origin, "X-Forwarded-For": ip, "Cookie": auth.CookieName + "=" + c.Value}
			return postGraphQL(t, url, h, refreshCookieDoc, nil).Code(t)
		}
		codes := map[string]int{}
		for i := range 100 {
			codes[refresh("203.0.113.9", fmt.Sprintf("https://evil%d.example", i%3))]++
		}
		if codes[models.Forbidden] != 40 || codes[models.RateLimited] != 60 {
			t.Errorf("100 refreshes from foreign origins: %v, want 40 FORBIDDEN then 60 RATE_LIMITED (the refresh limit)", codes)
		}
		// The flood spent the client's refreshes: its own frontend's too.
		if code := refresh("203.0.113.9", appOrigin); code != models.RateLimited {
			t.Errorf("allowed origin from the flooding client: %s, want RATE_LIMITED", code)
		}
		// Another client is counted apart, and warned about apart.
		if code := refresh("198.51.100.2", "https://evil.example"); code != models.Forbidden {
			t.Errorf("foreign origin from another client: %s, want FORBIDDEN", code)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		byIP := map[string]int{}
		lines := 0
		for _, l := range logLines(t, logs.String()) {
			if l["msg"] != "refresh by cookie refused for its Origin" {
				continue
			}
			lines++
			n, _ := l["refused"].(float64)
			ip, _ := l["ip"].(string)
			byIP[ip] += int(n)
		}
		if byIP["203.0.113.9"] != 40 || byIP["198.51.100.2"] != 1 || lines > 3 {
			t.Errorf("origin warnings: %d lines counting %v, want at most 3 lines counting 40 for 203.0.113.9 and 1 for 198.51.100.2", lines, byIP)
		}
	})
}
