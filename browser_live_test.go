//go:build browser

package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/authql/authql/internal/testdb"
)

// TestBrowserLiveSignOut: the example frontend keeps a websocket with a
// sessionEvents subscription (graphql-ws's client, served by authql) and
// signs out as soon as its session is revoked from another browser: the
// page learns it from the socket (4401), sending no request of its own.
func TestBrowserLiveSignOut(t *testing.T) {
	artifacts := browserArtifacts(t)
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		url, _ := startRun(t, map[string]string{"DATABASE_URL": dsn, "AUTH_EXAMPLE_UI": "true"})
		dir := filepath.Join(artifacts, "live-"+browserDBName(dsn))
		a, other := newBrowser(t, dir), newBrowser(t, filepath.Join(dir, "other"))
		const email, password = "live@example.com", "correct horse battery"
		a.steps(t, []browserStep{
			{"RegistersAndGoesLive", func(t *testing.T) {
				a.run(t, chromedp.Navigate(url+examplePath))
				a.waitText(t, "#status", "Signed out")
				a.run(t,
					chromedp.SendKeys("#email", email, chromedp.ByQuery),
					chromedp.SendKeys("#password", password, chromedp.ByQuery),
					chromedp.Click("#register", chromedp.ByQuery),
				)
				a.waitText(t, "#status", "Signed in as "+email)
				a.waitText(t, "#live", "on")
				a.noError(t)
			}},
			{"HearsSignInElsewhere", func(t *testing.T) {
				other.run(t, chromedp.Navigate(url+examplePath))
				other.waitText(t, "#status", "Signed out")
				other.login(t, email, password)
				other.waitText(t, "#status", "Signed in as "+email)
				other.waitText(t, "#live", "on")
				a.waitText(t, "#live-event", "SESSION_CREATED")
			}},
			{"SignedOutWhenRevokedElsewhere", func(t *testing.T) {
				other.run(t, chromedp.Click("#load-sessions", chromedp.ByQuery))
				other.waitExample(t, "two sessions listed", `document.querySelectorAll('#sessions tbody tr').length === 2`)
				before := a.requestCount()
				start := time.Now()
				other.run(t, chromedp.Click("#sessions tbody tr:not(.current) button.revoke", chromedp.ByQuery))
				a.waitText(t, "#status", "Signed out")
				t.Logf("page A signed out %s after the click on Revoke in page B", time.Since(start).Round(time.Millisecond))
				a.wantText(t, "#notice", "Signed out: this session was ended elsewhere.")
				a.wantText(t, "#live", "off")
				// Told by the socket: the page asked nothing in between.
				for _, r := range a.requestsSince(before) {
					if strings.Contains(r.url, "/query") {
						t.Errorf("page A sent %s %s before signing out: it polled instead of hearing the socket", r.method, r.url)
					}
				}
				other.wantText(t, "#status", "Signed in as "+email)
				other.wantText(t, "#live", "on")
			}},
		})
		other.noPageErrors(t)
	})
}

// requestCount is how many requests the tab has sent so far.
func (b *browser) requestCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.requests)
}

// requestsSince returns the requests sent after the first n.
func (b *browser) requestsSince(n int) []sentRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]sentRequest(nil), b.requests[n:]...)
}
