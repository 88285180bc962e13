//go:build browser

package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/testdb"
)

// chromiumPath is Debian's Chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// TestBrowserExample drives the example frontend (examples/web) in a real
// headless Chromium through a whole browser session: register, me, a
// reload kept signed in by the refresh cookie, a silent refresh once the
// access token has expired, the session list and revoking another
// session, logout, an error shown, and login. Each step is a subtest,
// named for what it checks, and leaves a screenshot in the artifacts
// directory (AUTHQL_ARTIFACTS, else artifacts/browser).
func TestBrowserExample(t *testing.T) {
	artifacts := browserArtifacts(t)
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel() // most of the time is spent waiting for the access token to expire
		url, _ := startRun(t, map[string]string{
			"DATABASE_URL":    dsn,
			"AUTH_EXAMPLE_UI": "true",
			// The shortest allowed: with auth.MaxClockSkew of leeway the
			// token is refused about half a minute later.
			"AUTH_ACCESS_TTL": "1s",
		})
		b := newBrowser(t, filepath.Join(artifacts, "example-"+browserDBName(dsn)))
		const email, password = "browser@example.com", "correct horse battery"
		const otherUA = "authql-browser-test (second session)"
		var other tokens // the second session's

		steps := []struct {
			name string
			// optional: a failure does not stop the steps after it. For
			// the sessions steps, whose resolvers come in another branch.
			optional bool
			f        func(t *testing.T)
		}{
			{"OpensSignedOut", false, func(t *testing.T) {
				b.run(t, chromedp.Navigate(url+examplePath))
				b.waitText(t, "#status", "Signed out")
				b.noError(t)
			}},
			{"Registers", false, func(t *testing.T) {
				b.run(t,
					chromedp.SendKeys("#email", email, chromedp.ByQuery),
					chromedp.SendKeys("#password", password, chromedp.ByQuery),
					chromedp.Click("#register", chromedp.ByQuery),
				)
				b.waitText(t, "#status", "Signed in as "+email)
				b.wantText(t, "#me-email", email)
				b.wantText(t, "#me-roles", "user")
				// Set from http://127.0.0.1 with Secure on: Chromium treats
				// loopback as a secure context and keeps it.
				c := b.refreshCookie(t, url)
				if c == nil {
					t.Fatal("no refresh cookie after register")
				}
				if !c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteStrict || c.Path != auth.CookiePath {
					t.Errorf("refresh cookie HttpOnly=%v Secure=%v SameSite=%v Path=%q, want HttpOnly, Secure, Strict, %s",
						c.HTTPOnly, c.Secure, c.SameSite, c.Path, auth.CookiePath)
				}
			}},
			{"ReloadStaysSignedIn", false, func(t *testing.T) {
				b.run(t, chromedp.Reload())
				b.waitText(t, "#status", "Signed in as "+email)
				// The page refreshed once, through the cookie, to get an
				// access token: it kept none across the reload.
				b.wantText(t, "#refreshes", "1")
			}},
			{"RefreshesSilentlyAfterExpiry", false, func(t *testing.T) {
				// Ask for me until the access token has expired and the
				// page has refreshed on UNAUTHENTICATED and retried. Twice
				// at once each time: the two calls fail together, yet
				// must refresh only once (the refresh is single flight).
				for i := 0; b.text(t, "#refreshes") == "1"; i++ {
					if i == 90 {
						t.Fatal("no silent refresh after 90 rounds of me, a second apart; the access token lives 1s (plus the clock skew leeway)")
					}
					b.run(t, chromedp.Evaluate(`$('reload-me').click(); $('reload-me').click()`, nil))
					time.Sleep(time.Second)
					b.noError(t)
				}
				b.wantText(t, "#refreshes", "2")
				b.wantText(t, "#status", "Signed in as "+email)
				b.wantText(t, "#me-email", email)
			}},
			{"ListsSessions", true, func(t *testing.T) {
				// A second session, from another client.
				other = tokensOf(postGraphQL(t, url, map[string]string{"User-Agent": otherUA},
					`mutation ($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken } }`,
					map[string]any{"e": email, "p": password}).OK(t), "login")
				b.run(t, chromedp.Click("#load-sessions", chromedp.ByQuery))
				b.waitExample(t, "two sessions listed", `document.querySelectorAll('#sessions tbody tr').length === 2`)
				b.wantJS(t, "one of them current", `document.querySelectorAll('#sessions tbody tr.current').length === 1`)
				b.wantJS(t, "the other one the second client's",
					fmt.Sprintf(`document.querySelector('#sessions tbody tr:not(.current)').textContent.includes(%q)`, otherUA))
			}},
			{"RevokesOtherSession", true, func(t *testing.T) {
				const revoke = "#sessions tbody tr:not(.current) button.revoke"
				b.wantJS(t, "a Revoke button for the other session", fmt.Sprintf(`!!document.querySelector(%q)`, revoke))
				if t.Failed() {
					t.FailNow()
				}
				b.run(t, chromedp.Click(revoke, chromedp.ByQuery))
				b.waitExample(t, "only the current session left",
					`document.querySelectorAll('#sessions tbody tr').length === 1 && document.querySelectorAll('#sessions tbody tr.current').length === 1`)
				if code := postGraphQL(t, url, nil, `mutation ($r: String) { refresh(refreshToken: $r) { accessToken } }`,
					map[string]any{"r": other.Refresh}).Code(t); code != "UNAUTHENTICATED" {
					t.Errorf("refresh of the revoked session: %s, want UNAUTHENTICATED", code)
				}
			}},
			{"LogsOut", false, func(t *testing.T) {
				// The page's access token, to check that it dies with the
				// session: a fresh one, got by the refresh of a reload, so
				// that it is still accepted (for the clock skew leeway) and
				// only logging out can make it fail. (A top-level let:
				// reachable from DevTools, not from other origins.)
				b.run(t, chromedp.Reload())
				b.waitText(t, "#status", "Signed in as "+email)
				var accessToken string
				b.run(t, chromedp.Evaluate(`accessToken`, &accessToken))
				if accessToken == "" {
					t.Fatal("the page holds no access token before logout")
				}
				gql(t, url, accessToken, `{ me { id } }`).OK(t)
				b.run(t, chromedp.Click("#logout", chromedp.ByQuery))
				b.waitText(t, "#status", "Signed out")
				b.noError(t)
				if c := b.refreshCookie(t, url); c != nil {
					t.Errorf("refresh cookie still set after logout: %+v", c)
				}
				if code := gql(t, url, accessToken, `{ me { id } }`).Code(t); code != "UNAUTHENTICATED" {
					t.Errorf("me with the logged-out access token: %s, want UNAUTHENTICATED", code)
				}
			}},
			{"ReloadStaysSignedOut", false, func(t *testing.T) {
				b.run(t, chromedp.Reload())
				b.waitText(t, "#status", "Signed out")
				b.noError(t)
			}},
			{"ShowsError", false, func(t *testing.T) {
				b.run(t,
					chromedp.SetValue("#email", email, chromedp.ByQuery),
					chromedp.SetValue("#password", "wrong password", chromedp.ByQuery),
					chromedp.Click("#login", chromedp.ByQuery),
				)
				b.waitJS(t, "the error shown", `!document.getElementById('error').hidden`)
				if got := b.text(t, "#error"); !strings.Contains(got, "(UNAUTHENTICATED)") {
					t.Errorf("error shown: %q, want its message and (UNAUTHENTICATED)", got)
				}
				b.wantText(t, "#status", "Signed out")
			}},
			{"LogsIn", false, func(t *testing.T) {
				b.run(t,
					chromedp.SetValue("#password", password, chromedp.ByQuery),
					chromedp.Click("#login", chromedp.ByQuery),
				)
				b.waitText(t, "#status", "Signed in as "+email)
				b.noError(t)
				if b.refreshCookie(t, url) == nil {
					t.Error("no refresh cookie after login")
				}
			}},
		}
		for i, s := range steps {
			ok := t.Run(s.name, func(t *testing.T) {
				defer b.screenshot(t, fmt.Sprintf("%02d-%s", i+1, s.name))
				s.f(t)
			})
			if !ok && !s.optional {
				t.Fatalf("step %s failed; the steps after it depend on it", s.name)
			}
		}
		b.noPageErrors(t)
	})
}

// TestBrowserPlayground runs a login in the playground, in a real Chromium
// that cannot reach any CDN: the playground's scripts come from authql.
func TestBrowserPlayground(t *testing.T) {
	artifacts := browserArtifacts(t)
	url, _ := startRun(t, map[string]string{"DATABASE_URL": testdb.SQLite(t)})
	const email, password = "playground@example.com", "password1"
	postGraphQL(t, url, nil, `mutation ($e: String!, $p: String!) { register(email: $e, password: $p) { accessToken } }`,
		map[string]any{"e": email, "p": password}).OK(t)
	b := newBrowser(t, filepath.Join(artifacts, "playground"))

	t.Run("Loads", func(t *testing.T) {
		defer b.screenshot(t, "01-loaded")
		b.run(t, chromedp.Navigate(url+"/"))
		b.waitJS(t, "GraphiQL's editor", `!!document.querySelector('.graphiql-query-editor .CodeMirror') && !!document.querySelector('.graphiql-execute-button')`)
	})
	if t.Failed() {
		t.FailNow()
	}
	t.Run("RunsQuery", func(t *testing.T) {
		defer b.screenshot(t, "02-ran-login")
		query := fmt.Sprintf("mutation {\n  login(email: %q, password: %q) {\n    user { email roles }\n  }\n}", email, password)
		// Through CodeMirror's own API: typing would meet its
		// autocompletion and bracket closing, which are not under test.
		b.run(t,
			chromedp.Evaluate(fmt.Sprintf(`document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(%q)`, query), nil),
			chromedp.Click(".graphiql-execute-button", chromedp.ByQuery),
		)
		b.waitJS(t, "the login's answer",
			fmt.Sprintf(`(document.querySelector('.graphiql-response') || {textContent: ''}).textContent.includes(%q)`, `"email": "`+email+`"`))
		if got := b.text(t, ".graphiql-response"); !strings.Contains(got, `"roles": [`) || strings.Contains(got, `"errors"`) {
			t.Errorf("response shown: %s", got)
		}
	})
	b.noPageErrors(t)
}

// browserArtifacts returns the directory for screenshots, skipping the
// test when there is no Chromium (failing instead in CI, which must run
// it).
func browserArtifacts(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Chromium at %s in CI, which must run the browser tests: %v", chromiumPath, err)
		}
		t.Skipf("no Chromium at %s (apt-get install chromium to run the browser tests): %v", chromiumPath, err)
	}
	dir := os.Getenv("AUTHQL_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("artifacts", "browser")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

func browserDBName(dsn string) string {
	if strings.HasPrefix(dsn, "postgres") {
		return "postgres"
	}
	return "sqlite"
}

// browser is one headless Chromium with one tab.
type browser struct {
	ctx context.Context // the tab
	dir string          // where screenshots go

	mu       sync.Mutex
	errors   []string      // exceptions and console errors of the page
	requests []sentRequest // every request the tab sent, in order
}

// sentRequest is what a request of the tab carried to the network: the
// fragment of a URL stays in the browser and is not here.
type sentRequest struct {
	method, url string
	headers     []string // "Name: value"
	body        string
}

func newBrowser(t *testing.T, dir string) *browser {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: Chromium's helper processes may still be writing to
	// the profile for a moment after the browser is killed, and
	// t.TempDir's cleanup fails the test when it cannot remove it all.
	// Registered before the allocator, so this cleanup runs after it.
	profile, err := os.MkdirTemp("", "authql-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeProfile(t, profile) })
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // as root in containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// The network may be closed: no QUIC probing, background
		// requests, component or sync updates that hang or stall.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1100, 850),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	b := &browser{ctx: ctx, dir: dir}
	chromedp.ListenTarget(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.sent(ev.Request)
			return
		case *network.EventRequestWillBeSentExtraInfo:
			// The headers as sent, with those the browser adds (Cookie).
			b.sent(&network.Request{Method: "(headers)", URL: "request " + string(ev.RequestID), Headers: ev.Headers})
			return
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Error()
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.APITypeError {
				return
			}
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			msg = "console.error: " + strings.Join(args, " ")
		case *cdplog.EventEntryAdded:
			// The browser's own messages: CSP violations, failed loads.
			if ev.Entry.Level != cdplog.LevelError {
				return
			}
			msg = fmt.Sprintf("%s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
		default:
			return
		}
		b.mu.Lock()
		b.errors = append(b.errors, msg)
		b.mu.Unlock()
	})
	// Start Chromium now, so that a failure to start is reported here. On
	// ctx itself: the context of the first Run owns the browser, and one
	// with a timeout would close it when done.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return b
}

// sent records a request of the tab.
func (b *browser) sent(r *network.Request) {
	req := sentRequest{method: r.Method, url: r.URL}
	for k, v := range r.Headers {
		req.headers = append(req.headers, fmt.Sprintf("%s: %v", k, v))
	}
	for _, e := range r.PostDataEntries {
		// Bytes is base64, as CDP sends binary.
		data, err := base64.StdEncoding.DecodeString(e.Bytes)
		if err != nil {
			data = []byte(e.Bytes)
		}
		req.body += string(data)
	}
	b.mu.Lock()
	b.requests = append(b.requests, req)
	b.mu.Unlock()
}

// removeProfile removes a Chromium profile directory, retrying while the
// browser's last processes finish writing to it; what cannot be removed is
// only logged, as a leftover temporary directory is no failure of authql.
func removeProfile(t *testing.T, dir string) {
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("could not remove the Chromium profile %s: %v", dir, err)
}

// run runs actions, failing the test with the page's state on error.
func (b *browser) run(t *testing.T, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%v; %s", err, b.state())
	}
}

// waitJS polls the JavaScript expression js until it is true.
func (b *browser) waitJS(t *testing.T, what, js string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.Poll(js, nil, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s (%s): %v; %s", what, js, err, b.state())
	}
}

// wantJS checks that the JavaScript expression js is true now.
func (b *browser) wantJS(t *testing.T, what, js string) {
	t.Helper()
	var ok bool
	b.run(t, chromedp.Evaluate(js, &ok))
	if !ok {
		t.Errorf("want %s (%s); %s", what, js, b.state())
	}
}

// waitExample waits until the JavaScript expression js is true or the
// example shows an error, and fails in the latter case.
func (b *browser) waitExample(t *testing.T, what, js string) {
	t.Helper()
	b.waitJS(t, what, fmt.Sprintf(`(%s) || !document.getElementById('error').hidden`, js))
	b.noError(t)
}

// waitText waits until the element of selector shows text.
func (b *browser) waitText(t *testing.T, selector, text string) {
	t.Helper()
	b.waitJS(t, fmt.Sprintf("%s to show %q", selector, text),
		fmt.Sprintf(`(document.querySelector(%q) || {}).textContent === %q`, selector, text))
}

// wantText checks that the element of selector shows text now.
func (b *browser) wantText(t *testing.T, selector, text string) {
	t.Helper()
	if got := b.text(t, selector); got != text {
		t.Errorf("%s shows %q, want %q; %s", selector, got, text, b.state())
	}
}

// text is the text of the element of selector, "" if there is none.
func (b *browser) text(t *testing.T, selector string) string {
	t.Helper()
	var s string
	b.run(t, chromedp.Evaluate(fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ''`, selector), &s))
	return s
}

// noError fails if the example shows an error.
func (b *browser) noError(t *testing.T) {
	t.Helper()
	var shown bool
	b.run(t, chromedp.Evaluate(`!document.getElementById('error').hidden`, &shown))
	if shown {
		t.Fatalf("the page shows an error: %s", b.state())
	}
}

// state describes the example page for failure messages.
func (b *browser) state() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	var s string
	err := chromedp.Run(ctx, chromedp.Evaluate(`JSON.stringify({
		url: location.href,
		status: (document.getElementById('status') || {}).textContent,
		error: (document.getElementById('error') || {}).textContent,
		notice: (document.getElementById('notice') || {}).textContent,
	})`, &s))
	if err != nil {
		return "page state unknown: " + err.Error()
	}
	return "page: " + s
}

// refreshCookie returns the browser's refresh cookie for the server at
// url, nil if it has none.
func (b *browser) refreshCookie(t *testing.T, url string) *network.Cookie {
	t.Helper()
	var cookies []*network.Cookie
	b.run(t, chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().WithURLs([]string{url + auth.CookiePath}).Do(ctx)
		return err
	}))
	for _, c := range cookies {
		if c.Name == auth.CookieName {
			return c
		}
	}
	return nil
}

// screenshot saves the tab as name.png.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&png)); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	t.Logf("screenshot %s", path)
}

// noPageErrors fails on any exception or console error of the page (a
// Content-Security-Policy violation, for one, is a console error).
func (b *browser) noPageErrors(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		if strings.Contains(e, "/favicon.ico)") {
			// Neither page has an icon; the browser asks anyway.
			continue
		}
		t.Errorf("page error: %s", e)
	}
}
