//go:build browser

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/authql/authql/internal/smtptest"
	"github.com/authql/authql/internal/testdb"
)

// TestBrowserAccounts drives the example's account pages (examples/web,
// accounts.js) in a real headless Chromium, with every mail delivered by
// run() to a real SMTP server the test runs (internal/smtptest) and read
// there: register; verify the email by the mailed link; forgot password,
// reset by the mailed link, the old password refused and the new one
// accepted; a reset by the mailed code typed in the page; change password,
// ending the other sessions; change email by the mailed code; too many
// reset mails refused with RATE_LIMITED shown; the account deleted.
//
// The links are opened at their address, as from a mail client. That is
// AUTH_APP_URL's default outside production, http://localhost:PORT/example,
// so the page is driven at http://localhost:PORT: a link opens in the
// session's origin, with its refresh cookie. Each step is a subtest,
// named for what it checks, and leaves a screenshot in the artifacts
// directory.
func TestBrowserAccounts(t *testing.T) {
	artifacts := browserArtifacts(t)
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		mails := smtptest.Start(t)
		url, _ := startRun(t, map[string]string{
			"DATABASE_URL":    dsn,
			"AUTH_EXAMPLE_UI": "true",
			"AUTH_SMTP_URL":   mails.URL,
		})
		app := "http://localhost:" + url[strings.LastIndex(url, ":")+1:]
		pages := app + examplePath
		b := newBrowser(t, filepath.Join(artifacts, "accounts-"+browserDBName(dsn)))
		a := &accountSteps{b: b, mails: mails, url: url, pages: pages}
		steps := []browserStep{
			{"OpensSignedOut", a.opensSignedOut},
			{"RegistersUnverified", a.registers},
			{"SendsVerification", a.sendsVerification},
			{"VerifiesByLink", a.verifiesByLink},
			{"AsksForReset", a.asksForReset},
			{"ResetsByLink", a.resetsByLink},
			{"RefusesUsedLink", a.refusesUsedLink},
			{"RefusesOldPassword", a.refusesOldPassword},
			{"LogsInWithNewPassword", a.logsInWithNewPassword},
			{"ResetsByCode", a.resetsByCode},
			{"ChangesPassword", a.changesPassword},
			{"ChangesEmailByCode", a.changesEmailByCode},
			{"ShowsRateLimited", a.showsRateLimited},
			{"DeletesAccount", a.deletesAccount},
		}
		b.steps(t, steps)
	})
}

// TestBrowserAccountGates drives the example through the refusals a user
// meets and what the page tells them, with AUTH_REQUIRE_VERIFIED_EMAIL=true:
// register answers EMAIL_NOT_VERIFIED (and mails the link), so does login;
// the mailed link, opened signed out, verifies; login works; an admin
// disables the account, the page's session ends at its next request, and
// login answers ACCOUNT_DISABLED.
func TestBrowserAccountGates(t *testing.T) {
	artifacts := browserArtifacts(t)
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel()
		mails := smtptest.Start(t)
		const admin = "root@example.com"
		url, _ := startRun(t, map[string]string{
			"DATABASE_URL":                dsn,
			"AUTH_EXAMPLE_UI":             "true",
			"AUTH_SMTP_URL":               mails.URL,
			"AUTH_REQUIRE_VERIFIED_EMAIL": "true",
			"AUTH_ADMIN_EMAIL":            admin,
			"AUTH_ADMIN_PASSWORD":         "root-password",
		})
		pages := "http://localhost:" + url[strings.LastIndex(url, ":")+1:] + examplePath
		b := newBrowser(t, filepath.Join(artifacts, "gates-"+browserDBName(dsn)))
		a := &accountSteps{b: b, mails: mails, url: url, pages: pages}
		const email, password = "gated@example.com", "correct horse battery"
		refused := func(t *testing.T, code, hint string) {
			t.Helper()
			b.waitJS(t, "the error shown", `!$('error').hidden`)
			b.wantJS(t, code+" shown", fmt.Sprintf(`$('error').dataset.code === %q`, code))
			if got := b.text(t, "#error"); !strings.HasPrefix(got, hint) || !strings.HasSuffix(got, "("+code+")") {
				t.Errorf("error shown: %q, want %q…(%s)", got, hint, code)
			}
			b.wantText(t, "#status", "Signed out")
		}
		steps := []browserStep{
			{"RegisterAsksToVerify", func(t *testing.T) {
				b.run(t, chromedp.Navigate(pages))
				b.waitText(t, "#status", "Signed out")
				b.run(t,
					chromedp.SendKeys("#email", email, chromedp.ByQuery),
					chromedp.SendKeys("#password", password, chromedp.ByQuery),
					chromedp.Click("#register", chromedp.ByQuery),
				)
				refused(t, "EMAIL_NOT_VERIFIED", "Verify your email first")
			}},
			{"LoginAsksToVerify", func(t *testing.T) {
				b.login(t, email, password)
				refused(t, "EMAIL_NOT_VERIFIED", "Verify your email first")
			}},
			{"VerifiesByLinkSignedOut", func(t *testing.T) {
				m := a.mail(t, email, "Verify your email", 1)
				a.openLink(t, m, "verify")
				b.waitText(t, "#status", "Signed out")
				b.run(t, chromedp.Click("#request-submit", chromedp.ByQuery))
				b.waitExample(t, "the email verified", `$('notice').textContent === 'Your email is verified.'`)
				b.onlyInQuery(t, "the verification token", m.Token())
			}},
			{"LogsIn", func(t *testing.T) {
				b.login(t, email, password)
				b.waitText(t, "#status", "Signed in as "+email)
				b.noError(t)
				b.wantText(t, "#me-verified", "yes")
			}},
			{"DisabledSignsOut", func(t *testing.T) {
				root := a.adminLogin(t, admin)
				gql(t, url, root.Access, fmt.Sprintf(`mutation { disableUser(userId: %q) { id } }`, b.text(t, "#me-id"))).OK(t)
				// Told by its socket (ACCOUNT_DISABLED, then 4401; see
				// live.js), the page signs out before its next request.
				b.waitText(t, "#status", "Signed out")
				b.wantText(t, "#notice", "Signed out: this session was ended elsewhere.")
			}},
			{"LoginShowsDisabled", func(t *testing.T) {
				b.login(t, email, password)
				refused(t, "ACCOUNT_DISABLED", "This account is disabled")
			}},
		}
		b.steps(t, steps)
	})
}

// adminLogin logs in the admin of AUTH_ADMIN_EMAIL, with the verified-email
// gate on: created unverified at start, it proves its address as anyone
// would, here by a password reset through the API (a reset marks the
// address verified).
func (a *accountSteps) adminLogin(t *testing.T, admin string) tokens {
	t.Helper()
	const password = "admin's new password"
	postGraphQL(t, a.url, nil, `mutation ($e: String!) { requestPasswordReset(email: $e) { requestId } }`,
		map[string]any{"e": admin}).OK(t)
	m := a.mail(t, admin, "Reset your password", 1)
	postGraphQL(t, a.url, nil, `mutation ($t: String, $p: String!) { resetPassword(token: $t, newPassword: $p) }`,
		map[string]any{"t": m.Token(), "p": password}).OK(t)
	return tokensOf(postGraphQL(t, a.url, nil, loginDoc, loginVars(admin, password)).OK(t), "login")
}

// The account's passwords and addresses, one per step that changes them.
const (
	acctEmail     = "accounts@example.com"
	acctPassword  = "correct horse battery"
	acctReset     = "reset by the mailed link"
	acctCodeReset = "reset by the mailed code"
	acctChanged   = "changed in the page"
	acctNewEmail  = "moved@example.com"
	acctUnknown   = "nobody@example.com"
)

// accountSteps are TestBrowserAccounts' steps, in order, on one browser,
// server and SMTP server.
type accountSteps struct {
	b     *browser
	mails *smtptest.Server
	url   string // the server, for GraphQL requests of the test's own
	pages string // the example, at AUTH_APP_URL's origin

	reset smtptest.Mail // the reset mail whose link was used
}

func (a *accountSteps) opensSignedOut(t *testing.T) {
	a.b.run(t, chromedp.Navigate(a.pages))
	a.b.waitText(t, "#status", "Signed out")
	a.b.noError(t)
}

func (a *accountSteps) registers(t *testing.T) {
	a.b.run(t,
		chromedp.SendKeys("#email", acctEmail, chromedp.ByQuery),
		chromedp.SendKeys("#password", acctPassword, chromedp.ByQuery),
		chromedp.Click("#register", chromedp.ByQuery),
	)
	a.b.waitText(t, "#status", "Signed in as "+acctEmail)
	a.b.wantText(t, "#me-verified", "no")
	a.b.wantJS(t, "the button to verify", `!$('send-verification').hidden`)
}

func (a *accountSteps) sendsVerification(t *testing.T) {
	a.b.run(t, chromedp.Click("#send-verification", chromedp.ByQuery))
	a.b.waitExample(t, "the code form", `!$('request').hidden && !$('request-form').hidden`)
	a.b.wantJS(t, "a code field and no password field", `!$('request-code-label').hidden && $('request-password-label').hidden`)
	a.b.wantJS(t, "the request remembered by this tab", `!!JSON.parse(sessionStorage.getItem('authql.verify')).requestId`)
	a.b.wantText(t, "#notice", "A link and a code are on their way to "+acctEmail+".")
}

func (a *accountSteps) verifiesByLink(t *testing.T) {
	m := a.mail(t, acctEmail, "Verify your email", 1)
	a.openLink(t, m, "verify")
	// Signed in again through the cookie: the link opened in its origin.
	a.b.waitText(t, "#status", "Signed in as "+acctEmail)
	a.b.wantJS(t, "the link's form: no code field", `!$('request-form').hidden && $('request-code-label').hidden`)
	a.b.run(t, chromedp.Click("#request-submit", chromedp.ByQuery))
	a.b.waitExample(t, "the email verified", `$('notice').textContent === 'Your email is verified.'`)
	a.b.waitText(t, "#me-verified", "yes")
	a.b.wantJS(t, "no button to verify", `$('send-verification').hidden`)
	a.b.onlyInQuery(t, "the verification token", m.Token())
}

func (a *accountSteps) asksForReset(t *testing.T) {
	a.b.run(t, chromedp.Click("#logout", chromedp.ByQuery))
	a.b.waitText(t, "#status", "Signed out")
	a.b.follow(t, "#forgot-link")
	a.b.waitJS(t, "the forgot page", fmt.Sprintf(`location.href === %q && !$('forgot').hidden`, a.pages+"forgot"))
	a.b.run(t,
		chromedp.SendKeys("#forgot-email", acctEmail, chromedp.ByQuery),
		chromedp.Click("#forgot-submit", chromedp.ByQuery),
	)
	a.b.waitExample(t, "the code form", `!$('request').hidden && !$('request-form').hidden`)
	a.b.wantJS(t, "a code and a password field", `!$('request-code-label').hidden && !$('request-password-label').hidden`)
}

func (a *accountSteps) resetsByLink(t *testing.T) {
	m := a.mail(t, acctEmail, "Reset your password", 1)
	// Opened twice, as a scanner then the user would: the page, script
	// and all, uses up nothing until the button is pressed.
	a.openLink(t, m, "reset")
	a.b.waitText(t, "#status", "Signed out")
	a.b.run(t, chromedp.Navigate(a.pages))
	a.b.waitText(t, "#status", "Signed out")
	a.openLink(t, m, "reset")
	a.b.waitText(t, "#status", "Signed out")
	a.b.wantJS(t, "the link's form: a password and no code field", `!$('request-form').hidden && $('request-code-label').hidden && !$('request-password-label').hidden`)
	a.b.run(t,
		chromedp.SendKeys("#request-password", acctReset, chromedp.ByQuery),
		chromedp.Click("#request-submit", chromedp.ByQuery),
	)
	a.b.waitExample(t, "the password changed", `$('notice').textContent.startsWith('Your password is changed')`)
	a.b.wantJS(t, "the form gone", `$('request').hidden`)
	a.b.wantText(t, "#status", "Signed out")
	a.b.onlyInQuery(t, "the reset token", m.Token())
	a.reset = m
}

func (a *accountSteps) refusesUsedLink(t *testing.T) {
	// The same path with a fragment: the browser does not load the page
	// again, and the page reads the new fragment.
	a.openLink(t, a.reset, "reset")
	a.b.wantJS(t, "the link's form again", `!$('request').hidden && !$('request-form').hidden && $('request-code-label').hidden`)
	a.b.run(t,
		chromedp.SendKeys("#request-password", "used link's password", chromedp.ByQuery),
		chromedp.Click("#request-submit", chromedp.ByQuery),
	)
	a.b.waitJS(t, "the error shown", `!$('error').hidden`)
	a.b.wantJS(t, "BAD_USER_INPUT shown", `$('error').dataset.code === 'BAD_USER_INPUT'`)
	a.b.wantJS(t, "the form kept", `!$('request-form').hidden`)
	a.b.run(t, chromedp.Evaluate(`$('request-password').value = ''`, nil))
}

func (a *accountSteps) refusesOldPassword(t *testing.T) {
	a.b.login(t, acctEmail, acctPassword)
	a.b.waitJS(t, "the error shown", `!$('error').hidden`)
	a.b.wantJS(t, "UNAUTHENTICATED shown", `$('error').dataset.code === 'UNAUTHENTICATED'`)
	a.b.wantText(t, "#status", "Signed out")
}

func (a *accountSteps) logsInWithNewPassword(t *testing.T) {
	a.b.login(t, acctEmail, acctReset)
	a.b.waitText(t, "#status", "Signed in as "+acctEmail)
	a.b.noError(t)
	a.b.wantText(t, "#me-verified", "yes")
}

func (a *accountSteps) resetsByCode(t *testing.T) {
	a.b.run(t, chromedp.Click("#logout", chromedp.ByQuery))
	a.b.waitText(t, "#status", "Signed out")
	a.b.run(t, chromedp.Navigate(a.pages+"forgot"))
	a.b.run(t,
		chromedp.SendKeys("#forgot-email", acctEmail, chromedp.ByQuery),
		chromedp.Click("#forgot-submit", chromedp.ByQuery),
	)
	a.b.waitExample(t, "the code form", `!$('request-form').hidden && !$('request-code-label').hidden`)
	m := a.mail(t, acctEmail, "Reset your password", 2)
	if m.Code() == "" {
		t.Fatalf("no code in the reset mail: %s", m.Text)
	}
	// Lower case and spaces, as a user may type it.
	a.b.run(t,
		chromedp.SendKeys("#request-code", " "+strings.ToLower(m.Code()), chromedp.ByQuery),
		chromedp.SendKeys("#request-password", acctCodeReset, chromedp.ByQuery),
		chromedp.Click("#request-submit", chromedp.ByQuery),
	)
	a.b.waitExample(t, "the password changed", `$('notice').textContent.startsWith('Your password is changed')`)
	a.b.wantJS(t, "the request forgotten", `sessionStorage.getItem('authql.reset') === null`)
	a.b.login(t, acctEmail, acctCodeReset)
	a.b.waitText(t, "#status", "Signed in as "+acctEmail)
	a.b.noError(t)
}

func (a *accountSteps) changesPassword(t *testing.T) {
	other := tokensOf(postGraphQL(t, a.url, nil, loginDoc, loginVars(acctEmail, acctCodeReset)).OK(t), "login")
	a.b.wantJS(t, "signing out the other sessions ticked by default", `$('pw-sign-out').checked`)
	a.b.run(t,
		chromedp.SendKeys("#pw-current", acctCodeReset, chromedp.ByQuery),
		chromedp.SendKeys("#pw-new", acctChanged, chromedp.ByQuery),
		chromedp.Click("#change-password", chromedp.ByQuery),
	)
	a.b.waitExample(t, "the password changed", `$('notice').textContent === 'Your password is changed and your other sessions have ended.'`)
	if code := postGraphQL(t, a.url, nil, refreshDoc, map[string]any{"t": other.Refresh}).Code(t); code != "UNAUTHENTICATED" {
		t.Errorf("refresh of the other session after the change: %s, want UNAUTHENTICATED", code)
	}
	// The page's own session goes on, with the pair the change returned.
	a.b.run(t, chromedp.Reload())
	a.b.waitText(t, "#status", "Signed in as "+acctEmail)
	a.b.noError(t)
	postGraphQL(t, a.url, nil, loginDoc, loginVars(acctEmail, acctChanged)).OK(t)
}

func (a *accountSteps) changesEmailByCode(t *testing.T) {
	a.b.run(t,
		chromedp.SendKeys("#new-email", acctNewEmail, chromedp.ByQuery),
		chromedp.SendKeys("#email-password", acctChanged, chromedp.ByQuery),
		chromedp.Click("#change-email", chromedp.ByQuery),
	)
	a.b.waitExample(t, "the code form", `!$('request-form').hidden && !$('request-code-label').hidden && $('request-password-label').hidden`)
	a.b.wantText(t, "#me-email", acctEmail) // not before the confirmation
	m := a.mail(t, acctNewEmail, "Confirm your new email", 1)
	a.mail(t, acctEmail, "change of your email", 1)
	a.b.run(t,
		chromedp.SendKeys("#request-code", m.Code(), chromedp.ByQuery),
		chromedp.Click("#request-submit", chromedp.ByQuery),
	)
	a.b.waitExample(t, "the email changed", `$('notice').textContent === 'Your email is changed.'`)
	a.b.wantText(t, "#me-email", acctNewEmail)
	a.b.wantText(t, "#status", "Signed in as "+acctNewEmail)
	a.b.wantText(t, "#me-verified", "yes")
}

func (a *accountSteps) showsRateLimited(t *testing.T) {
	// An address without an account gets the same answers, the limit
	// included; the page shows RATE_LIMITED with its wait.
	a.b.run(t, chromedp.Navigate(a.pages+"forgot"))
	a.b.waitText(t, "#status", "Signed in as "+acctNewEmail)
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatal("no RATE_LIMITED after 20 reset mails to one address")
		}
		a.b.run(t,
			chromedp.SetValue("#forgot-email", acctUnknown, chromedp.ByQuery),
			chromedp.Click("#forgot-submit", chromedp.ByQuery),
		)
		a.b.waitJS(t, "an answer", `!$('notice').hidden || !$('error').hidden`)
		if a.b.text(t, "#error") != "" {
			break
		}
		a.b.wantText(t, "#notice", "If "+acctUnknown+" has an account, a link and a code are on their way to it.")
	}
	a.b.wantJS(t, "RATE_LIMITED shown", `$('error').dataset.code === 'RATE_LIMITED'`)
	if got := a.b.text(t, "#error"); !strings.HasPrefix(got, "Too many attempts: try again in ") || !strings.HasSuffix(got, "(RATE_LIMITED)") {
		t.Errorf("error shown: %q, want the wait, the message and (RATE_LIMITED)", got)
	}
	if n := a.mails.Count(acctUnknown); n != 0 {
		t.Errorf("%d mails to %s, which has no account", n, acctUnknown)
	}
}

func (a *accountSteps) deletesAccount(t *testing.T) {
	a.b.run(t, chromedp.Navigate(a.pages))
	a.b.waitText(t, "#status", "Signed in as "+acctNewEmail)
	a.b.run(t,
		chromedp.SendKeys("#delete-password", acctChanged, chromedp.ByQuery),
		chromedp.Click("#delete-confirm", chromedp.ByQuery),
		chromedp.Click("#delete-account", chromedp.ByQuery),
	)
	a.b.waitExample(t, "the account deleted", `$('notice').textContent === 'Your account is deleted.'`)
	a.b.wantText(t, "#status", "Signed out")
	if code := postGraphQL(t, a.url, nil, loginDoc, loginVars(acctNewEmail, acctChanged)).Code(t); code != "UNAUTHENTICATED" {
		t.Errorf("login of the deleted account: %s, want UNAUTHENTICATED", code)
	}
	a.b.run(t, chromedp.Reload())
	a.b.waitText(t, "#status", "Signed out")
	a.b.noError(t)
}

// browserStep is one step of a browser test: a subtest, named for what it
// checks, that leaves a screenshot.
type browserStep struct {
	name string
	f    func(t *testing.T)
}

// steps runs steps in order, each as a subtest that leaves a screenshot,
// stopping at the first that fails (the steps after it depend on it), and
// then checks that the page had no errors.
func (b *browser) steps(t *testing.T, steps []browserStep) {
	t.Helper()
	for i, s := range steps {
		ok := t.Run(s.name, func(t *testing.T) {
			defer b.screenshot(t, fmt.Sprintf("%02d-%s", i+1, s.name))
			s.f(t)
		})
		if !ok {
			t.Fatalf("step %s failed; the steps after it depend on it", s.name)
		}
	}
	b.noPageErrors(t)
}

// mail returns the nth mail (from 1) to the address whose subject
// contains subject, waiting for it up to a minute (a bound on a hung
// test, not a measure of speed).
func (a *accountSteps) mail(t *testing.T, to, subject string, nth int) smtptest.Mail {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var found []smtptest.Mail
		for _, m := range a.mails.Mails() {
			for _, r := range m.To {
				if r == to && strings.Contains(m.Subject, subject) {
					found = append(found, m)
				}
			}
		}
		if len(found) >= nth {
			return found[nth-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail %d to %s with subject %q within a minute (%d such)", nth, to, subject, len(found))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openLink opens the link of a mail, checking that it is the contract's
// ${AUTH_APP_URL}/<path>#token=…, and that the page took the token out of
// the address bar.
func (a *accountSteps) openLink(t *testing.T, m smtptest.Mail, path string) {
	t.Helper()
	link := m.Link()
	if want := a.pages + path + "#token="; !strings.HasPrefix(link, want) || m.Token() == "" {
		t.Fatalf("link %q in the mail, want %s…", link, want)
	}
	a.b.run(t, chromedp.Navigate(link))
	a.b.waitJS(t, "the token out of the address bar",
		fmt.Sprintf(`location.href === %q`, a.pages+path))
}

// loginVars are the variables of loginDoc.
func loginVars(email, password string) map[string]any {
	return map[string]any{"e": email, "p": password}
}

// follow clicks the link of selector and waits for the page it opens.
func (b *browser) follow(t *testing.T, selector string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(selector, chromedp.ByQuery)); err != nil {
		t.Fatalf("follow %s: %v; %s", selector, err, b.state())
	}
}

// login logs in with the page's form.
func (b *browser) login(t *testing.T, email, password string) {
	t.Helper()
	b.run(t,
		chromedp.SetValue("#email", email, chromedp.ByQuery),
		chromedp.SetValue("#password", password, chromedp.ByQuery),
		chromedp.Click("#login", chromedp.ByQuery),
	)
}

// onlyInQuery checks that the secret left the browser once or more, and
// only in the body of a POST to /query: in no URL (the page's own request
// included: the fragment stays in the browser), no header (no Referer),
// and no other request.
func (b *browser) onlyInQuery(t *testing.T, what, secret string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	posted := 0
	for _, r := range b.requests {
		if strings.Contains(r.url, secret) || strings.Contains(strings.Join(r.headers, "\n"), secret) {
			t.Errorf("%s sent in the URL or headers of %s %s", what, r.method, r.url)
		}
		if strings.Contains(r.body, secret) {
			if r.method != "POST" || !strings.HasSuffix(r.url, "/query") {
				t.Errorf("%s sent in the body of %s %s", what, r.method, r.url)
			}
			posted++
		}
	}
	if posted == 0 {
		t.Errorf("%s was never posted to /query (of %d requests seen)", what, len(b.requests))
	}
}
