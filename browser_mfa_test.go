//go:build browser

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/testdb"
)

// TestBrowserMfa drives the example's second factors (examples/web,
// mfa.js and factors.js) in a real headless Chromium, with the passkeys of
// Chromium's virtual authenticator (the DevTools protocol's WebAuthn
// domain): register; set up an authenticator app, the test computing its
// codes from the key the page shows, as an app would; the recovery codes
// shown once; log out, and in with a code of the app; new recovery codes;
// register a passkey, rename it, sign in with it alone, and use it as the
// second factor of a password login; and, in a second browser whose
// session began before the app was set up (so at level 1), remove the app:
// the page asks the user to prove themself again (step-up), and removes
// it once they have; then, in another such session, the passkey (synced
// to that browser) proves the user for new recovery codes.
//
// WebAuthn needs a secure context and an origin its RP ID covers: the page
// is driven at http://localhost:PORT with AUTH_WEBAUTHN_RP_ID=localhost.
// Each step is a subtest, named for what it checks, and leaves a
// screenshot in the artifacts directory.
func TestBrowserMfa(t *testing.T) {
	artifacts := browserArtifacts(t)
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Parallel() // most of the time is spent waiting for the next TOTP step
		// The port is chosen first: the WebAuthn origin must name it.
		port := freePort(t)
		origin := "http://localhost:" + port
		url, _ := startRun(t, map[string]string{
			"DATABASE_URL":          dsn,
			"AUTH_EXAMPLE_UI":       "true",
			"PORT":                  port,
			"AUTH_WEBAUTHN_RP_ID":   "localhost",
			"AUTH_WEBAUTHN_ORIGINS": origin,
		})
		dir := filepath.Join(artifacts, "mfa-"+browserDBName(dsn))
		m := &mfaSteps{
			b:     newBrowser(t, dir),
			other: newBrowser(t, filepath.Join(dir, "other")),
			url:   url,
			pages: origin + examplePath,
		}
		m.b.steps(t, []browserStep{
			{"AddsVirtualAuthenticator", m.addsAuthenticator},
			{"Registers", m.registers},
			{"OtherBrowserSignsIn", m.otherBrowserSignsIn},
			{"EnrollsTotp", m.enrollsTotp},
			{"HidesRecoveryCodesWhenSaved", m.hidesRecoveryCodes},
			{"LoginAsksForSecondFactor", m.loginAsksForSecondFactor},
			{"LogsInWithTotp", m.logsInWithTotp},
			{"RegeneratesRecoveryCodes", m.regeneratesRecoveryCodes},
			{"LogsInWithRecoveryCode", m.logsInWithRecoveryCode},
			{"RegistersPasskey", m.registersPasskey},
			{"RenamesPasskey", m.renamesPasskey},
			{"SignsInWithPasskey", m.signsInWithPasskey},
			{"PasskeyAsSecondFactor", m.passkeyAsSecondFactor},
			{"StepUpCancelled", m.stepUpCancelled},
			{"StepsUpToRemoveFactor", m.stepsUpToRemoveFactor},
			{"StepsUpWithPasskey", m.stepsUpWithPasskey},
		})
		m.other.noPageErrors(t)
	})
}

// freePort returns a TCP port free on loopback now, for a server whose
// origin must be known before it starts.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

const (
	mfaEmail    = "mfa@example.com"
	mfaPassword = "correct horse battery"
	passkeyName = "Chromium's virtual key"
)

// mfaSteps are TestBrowserMfa's steps, in order, on one server.
type mfaSteps struct {
	b     *browser // the user's browser, with the virtual authenticator
	other *browser // another device, signed in before the second factor
	url   string   // the server, for the test's own requests
	pages string   // the example, at http://localhost:PORT

	authenticator webauthn.AuthenticatorID // the virtual one, in b
	spare         tokens                   // a session at level 1, begun before the app was set up

	secret   string   // the authenticator app's key, as the page showed it
	lastStep int64    // the TOTP step of the last code used: codes are single use
	codes    []string // the first recovery codes
}

func (m *mfaSteps) addsAuthenticator(t *testing.T) {
	m.authenticator = addAuthenticator(t, m.b)
}

// addAuthenticator gives b's tab a platform authenticator (a phone's or a
// laptop's) that keeps passkeys (resident keys) and verifies its user: the
// passkeys authql asks for. Presence and verification succeed without a
// prompt.
func addAuthenticator(t *testing.T, b *browser) webauthn.AuthenticatorID {
	t.Helper()
	var id webauthn.AuthenticatorID
	b.run(t, webauthn.Enable(), chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		id, err = webauthn.AddVirtualAuthenticator(&webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true, // sent either way: false would hang every ceremony
		}).Do(ctx)
		return err
	}))
	return id
}

func (m *mfaSteps) registers(t *testing.T) {
	m.b.run(t, chromedp.Navigate(m.pages))
	m.b.waitText(t, "#status", "Signed out")
	m.b.run(t,
		chromedp.SendKeys("#email", mfaEmail, chromedp.ByQuery),
		chromedp.SendKeys("#password", mfaPassword, chromedp.ByQuery),
		chromedp.Click("#register", chromedp.ByQuery),
	)
	m.b.waitText(t, "#status", "Signed in as "+mfaEmail)
	m.b.waitExample(t, "second factors loaded, none", `$('mfa-state').dataset.enabled === 'false'`)
	m.b.wantJS(t, "no factor listed", `$('mfa-factors').hidden && $('passkeys').hidden`)
	m.b.wantJS(t, "no regenerate button", `$('recovery-regenerate').hidden`)
}

func (m *mfaSteps) otherBrowserSignsIn(t *testing.T) {
	m.other.run(t, chromedp.Navigate(m.pages))
	m.other.waitText(t, "#status", "Signed out")
	m.other.login(t, mfaEmail, mfaPassword)
	m.other.waitText(t, "#status", "Signed in as "+mfaEmail)
	m.other.noError(t)
	m.spare = tokensOf(postGraphQL(t, m.url, nil, loginDoc, loginVars(mfaEmail, mfaPassword)).OK(t), "login")
}

func (m *mfaSteps) enrollsTotp(t *testing.T) {
	m.b.run(t,
		chromedp.SendKeys("#totp-label", "Phone", chromedp.ByQuery),
		chromedp.Click("#totp-enroll", chromedp.ByQuery),
	)
	m.b.waitExample(t, "the key shown", `!$('totp-setup').hidden && $('totp-secret').textContent !== ''`)
	// The QR code is authql's SVG, as a data: URI the page's
	// Content-Security-Policy lets it show (a refusal would leave it
	// without a width, and be a page error).
	m.b.waitJS(t, "the QR code shown", `$('totp-qr').src.startsWith('data:image/svg+xml') && $('totp-qr').complete && $('totp-qr').naturalWidth > 0`)
	m.b.wantJS(t, "the otpauth link", `$('totp-uri').href.startsWith('otpauth://totp/')`)
	m.b.shot(t, "#totp-setup", "04a-totp-key")
	m.secret = strings.ReplaceAll(m.b.text(t, "#totp-secret"), " ", "")
	// The other browser's session is to stay, at level 1, for the step-up
	// at the end.
	m.b.run(t, chromedp.Click("#totp-sign-out", chromedp.ByQuery))
	m.b.wantJS(t, "signing out the other sessions unticked", `!$('totp-sign-out').checked`)
	code, step := m.code(t, false)
	m.b.run(t,
		chromedp.SendKeys("#totp-code", code, chromedp.ByQuery),
		chromedp.Click("#totp-confirm", chromedp.ByQuery),
	)
	m.b.waitExample(t, "the app on", `$('notice').textContent.startsWith('Your authenticator app is on.')`)
	m.lastStep = step // the enrollment's code counts as used
	m.b.wantJS(t, "the key gone from the page", `$('totp-setup').hidden && $('totp-secret').textContent === '' && !$('totp-qr').hasAttribute('src')`)
	m.b.waitJS(t, "the factor listed", `$('mfa-state').dataset.enabled === 'true' && $('mfa-factors').querySelectorAll('tbody tr').length === 1`)
	m.b.wantJS(t, "named as typed", `$('mfa-factors').querySelector('tbody td').textContent === 'Phone'`)
	m.codes = m.recoveryCodes(t)
	m.b.shot(t, "#recovery-codes", "04b-recovery-codes")
	m.b.wantText(t, "#recovery-remaining", fmt.Sprintf("%d unused recovery codes.", len(m.codes)))
	m.b.wantText(t, "#status", "Signed in as "+mfaEmail)
	m.wantLevel(t, "after confirmTotp", "aal2", "otp")
}

func (m *mfaSteps) hidesRecoveryCodes(t *testing.T) {
	m.b.run(t, chromedp.Click("#recovery-saved", chromedp.ByQuery))
	m.b.wantJS(t, "the codes gone from the page", `$('recovery-codes').hidden && $('recovery-list').children.length === 0`)
	m.b.run(t, chromedp.Reload())
	m.b.waitText(t, "#status", "Signed in as "+mfaEmail)
	m.b.waitJS(t, "the factors loaded", `$('mfa-state').dataset.enabled === 'true'`)
	m.b.wantJS(t, "no codes shown after a reload", `$('recovery-codes').hidden`)
}

func (m *mfaSteps) loginAsksForSecondFactor(t *testing.T) {
	m.logout(t, m.b)
	m.b.login(t, mfaEmail, mfaPassword)
	m.b.waitExample(t, "the second step", `!$('mfa-step').hidden`)
	m.b.wantJS(t, "the login form hidden", `$('signed-out').hidden`)
	m.b.wantJS(t, "a code field, and no passkey button (none registered)", `!$('mfa-code-label').hidden && $('mfa-passkey').hidden`)
	m.b.wantText(t, "#mfa-code-what", "Code from your authenticator app, or a recovery code")
	m.b.wantText(t, "#status", "Signed out")
	if c := m.b.refreshCookie(t, m.url); c != nil {
		t.Errorf("refresh cookie set by a login that asked for a second factor: %+v", c)
	}
}

func (m *mfaSteps) logsInWithTotp(t *testing.T) {
	// A wrong code first: refused, and the step stays.
	m.b.run(t,
		chromedp.SendKeys("#mfa-code", wrongCode(m.code(t, false)), chromedp.ByQuery),
		chromedp.Click("#mfa-verify", chromedp.ByQuery),
	)
	m.b.waitJS(t, "the error shown", `!$('error').hidden`)
	m.b.wantJS(t, "BAD_USER_INPUT shown", `$('error').dataset.code === 'BAD_USER_INPUT'`)
	m.b.wantJS(t, "the second step kept", `!$('mfa-step').hidden`)
	code, step := m.code(t, true)
	m.b.run(t,
		chromedp.SetValue("#mfa-code", code, chromedp.ByQuery),
		chromedp.Click("#mfa-verify", chromedp.ByQuery),
	)
	m.b.waitText(t, "#status", "Signed in as "+mfaEmail)
	m.b.noError(t)
	m.lastStep = step
	m.b.wantJS(t, "the second step gone", `$('mfa-step').hidden`)
	m.wantLevel(t, "after verifyMfa", "aal2", "otp")
}

func (m *mfaSteps) regeneratesRecoveryCodes(t *testing.T) {
	m.b.waitJS(t, "the factors loaded", `!$('recovery-regenerate').hidden`)
	m.b.run(t, chromedp.Click("#recovery-regenerate", chromedp.ByQuery))
	m.b.waitExample(t, "new codes shown", `$('notice').textContent.startsWith('New recovery codes')`)
	codes := m.recoveryCodes(t)
	for _, c := range codes {
		if slices.Contains(m.codes, c) {
			t.Errorf("recovery code %s in both batches", c)
		}
	}
	m.b.wantText(t, "#recovery-remaining", fmt.Sprintf("%d unused recovery codes.", len(codes)))
	m.b.run(t, chromedp.Click("#recovery-saved", chromedp.ByQuery))
	// The first batch is gone: one of its codes no longer signs in.
	challenge := m.mfaChallenge(t)
	if code := postGraphQL(t, m.url, nil, `mutation ($c: ID!, $r: String) { verifyMfa(challengeId: $c, proof: {recoveryCode: $r}) { accessToken } }`,
		map[string]any{"c": challenge, "r": m.codes[0]}).Code(t); code != "BAD_USER_INPUT" {
		t.Errorf("verifyMfa with a code of the replaced batch: %s, want BAD_USER_INPUT", code)
	}
	m.codes = codes
}

func (m *mfaSteps) logsInWithRecoveryCode(t *testing.T) {
	m.logout(t, m.b)
	m.b.login(t, mfaEmail, mfaPassword)
	m.b.waitExample(t, "the second step", `!$('mfa-step').hidden`)
	// In lower case and without its hyphens, as a user may type it: the
	// page sends it as typed (it is no 6-digit code), authql normalises.
	typed := strings.ToLower(strings.ReplaceAll(m.codes[0], "-", ""))
	m.b.run(t,
		chromedp.SendKeys("#mfa-code", typed, chromedp.ByQuery),
		chromedp.Click("#mfa-verify", chromedp.ByQuery),
	)
	m.b.waitText(t, "#status", "Signed in as "+mfaEmail)
	m.b.noError(t)
	m.wantLevel(t, "after verifyMfa with a recovery code", "aal2", "rc")
	m.b.waitText(t, "#recovery-remaining", fmt.Sprintf("%d unused recovery codes.", len(m.codes)-1))
}

func (m *mfaSteps) registersPasskey(t *testing.T) {
	m.b.run(t,
		chromedp.SendKeys("#passkey-label", "Laptop", chromedp.ByQuery),
		chromedp.Click("#passkey-add", chromedp.ByQuery),
	)
	m.b.waitExample(t, "the passkey added", `$('notice').textContent.startsWith('Your passkey is added')`)
	m.b.waitJS(t, "the passkey listed", `$('passkeys').querySelectorAll('tbody tr').length === 1`)
	m.b.wantJS(t, "named as typed", `$('passkeys').querySelector('input.passkey-name').value === 'Laptop'`)
	creds := m.credentials(t)
	if len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
		t.Fatalf("virtual authenticator holds %+v, want one resident credential for localhost", creds)
	}
}

func (m *mfaSteps) renamesPasskey(t *testing.T) {
	m.b.run(t,
		chromedp.SetValue("#passkeys input.passkey-name", passkeyName, chromedp.ByQuery),
		chromedp.Click("#passkeys button.rename", chromedp.ByQuery),
	)
	m.b.waitExample(t, "the passkey renamed", `$('notice').textContent === 'The passkey is renamed.'`)
	m.b.run(t, chromedp.Reload())
	m.b.waitText(t, "#status", "Signed in as "+mfaEmail)
	m.b.waitJS(t, "the new name, from authql", fmt.Sprintf(`($('passkeys').querySelector('input.passkey-name') || {}).value === %q`, passkeyName))
}

func (m *mfaSteps) signsInWithPasskey(t *testing.T) {
	m.logout(t, m.b)
	before := m.signCount(t)
	m.b.run(t, chromedp.Click("#passkey-login", chromedp.ByQuery))
	m.b.waitText(t, "#status", "Signed in as "+mfaEmail)
	m.b.noError(t)
	if after := m.signCount(t); after <= before {
		t.Errorf("the authenticator's counter went from %d to %d: the passkey was not used", before, after)
	}
	m.wantLevel(t, "after a passkey sign-in", "aal2", "user")
	m.b.waitJS(t, "last used shown", `$('passkeys').querySelector('tbody tr td:nth-child(3)').textContent !== 'never'`)
}

func (m *mfaSteps) passkeyAsSecondFactor(t *testing.T) {
	m.logout(t, m.b)
	m.b.login(t, mfaEmail, mfaPassword)
	m.b.waitExample(t, "the second step, with a passkey button", `!$('mfa-step').hidden && !$('mfa-passkey').hidden`)
	before := m.signCount(t)
	m.b.run(t, chromedp.Click("#mfa-passkey", chromedp.ByQuery))
	m.b.waitText(t, "#status", "Signed in as "+mfaEmail)
	m.b.noError(t)
	if after := m.signCount(t); after <= before {
		t.Errorf("the authenticator's counter went from %d to %d: the passkey was not used", before, after)
	}
	m.wantLevel(t, "after verifyMfa with a passkey", "aal2", "user")
}

func (m *mfaSteps) stepUpCancelled(t *testing.T) {
	o := m.other
	o.run(t, chromedp.Reload())
	o.waitText(t, "#status", "Signed in as "+mfaEmail)
	o.waitJS(t, "the factor listed", `$('mfa-factors').querySelectorAll('tbody tr').length === 1`)
	o.run(t, chromedp.Click("#mfa-factors button.remove", chromedp.ByQuery))
	o.waitJS(t, "the step-up prompt", `$('stepup').open`)
	o.wantJS(t, "asking for the second factor", `$('stepup-note').textContent.startsWith('This needs your second factor')`)
	o.wantJS(t, "a code field and a passkey button", `!$('stepup-code-label').hidden && !$('stepup-passkey').hidden`)
	o.screenshot(t, "stepup-prompt")
	o.run(t, chromedp.Click("#stepup-cancel", chromedp.ByQuery))
	o.waitJS(t, "the refusal shown", `!$('stepup').open && !$('error').hidden`)
	o.wantJS(t, "INSUFFICIENT_USER_AUTHENTICATION shown", `$('error').dataset.code === 'INSUFFICIENT_USER_AUTHENTICATION'`)
	o.wantJS(t, "the factor kept", `$('mfa-factors').querySelectorAll('tbody tr').length === 1`)
}

func (m *mfaSteps) stepsUpToRemoveFactor(t *testing.T) {
	o := m.other
	o.run(t, chromedp.Click("#mfa-factors button.remove", chromedp.ByQuery))
	o.waitJS(t, "the step-up prompt", `$('stepup').open`)
	// A wrong code: refused in the prompt, which stays open.
	o.run(t,
		chromedp.SendKeys("#stepup-password", mfaPassword, chromedp.ByQuery),
		chromedp.SendKeys("#stepup-code", wrongCode(m.code(t, false)), chromedp.ByQuery),
		chromedp.Click("#stepup-submit", chromedp.ByQuery),
	)
	o.waitJS(t, "the refusal in the prompt", `!$('stepup-error').hidden`)
	o.wantJS(t, "BAD_USER_INPUT shown", `$('stepup-error').dataset.code === 'BAD_USER_INPUT' && $('stepup').open`)
	code, step := m.code(t, true)
	o.run(t,
		chromedp.SetValue("#stepup-code", code, chromedp.ByQuery),
		chromedp.Click("#stepup-submit", chromedp.ByQuery),
	)
	// The prompt closes, and the removal, sent again, goes through.
	o.waitExample(t, "the factor removed", `$('notice').textContent === 'The authenticator app is removed.'`)
	m.lastStep = step
	o.wantJS(t, "the prompt closed", `!$('stepup').open`)
	o.waitJS(t, "no factor listed", `$('mfa-factors').hidden`)
	o.wantJS(t, "still on: the passkey is left", `$('mfa-state').dataset.enabled === 'true' && $('passkeys').querySelectorAll('tbody tr').length === 1`)
	o.screenshot(t, "stepped-up")
	claims := tokenClaims(t, m.accessToken(t, o))
	if claims.Acr != "aal2" || !slices.Contains(claims.Amr, "otp") {
		t.Errorf("the other browser's token after reauthenticate: acr %q amr %v, want aal2 with otp", claims.Acr, claims.Amr)
	}
}

func (m *mfaSteps) stepsUpWithPasskey(t *testing.T) {
	o := m.other
	// The other browser takes up the spare session (level 1, older than
	// the app), as its cookie; and the passkey, as a synced one would
	// reach a second device.
	o.run(t, network.SetCookie(auth.CookieName, m.spare.Refresh).
		WithURL(m.pages).WithPath(auth.CookiePath).WithHTTPOnly(true).WithSecure(true).
		WithSameSite(network.CookieSameSiteStrict))
	o.run(t, chromedp.Reload())
	o.waitText(t, "#status", "Signed in as "+mfaEmail)
	o.waitJS(t, "the passkey listed", `$('passkeys').querySelectorAll('tbody tr').length === 1`)
	spare, _ := pageSessions(t, o)
	synced := addAuthenticator(t, o)
	before := m.signCount(t)
	creds := m.credentials(t)
	o.run(t, chromedp.ActionFunc(func(ctx context.Context) error {
		for _, c := range creds {
			if err := webauthn.AddCredential(synced, c).Do(ctx); err != nil {
				return err
			}
		}
		return nil
	}))
	o.run(t, chromedp.Click("#recovery-regenerate", chromedp.ByQuery))
	o.waitJS(t, "the step-up prompt", `$('stepup').open && !$('stepup-passkey').hidden`)
	o.run(t, chromedp.Click("#stepup-passkey", chromedp.ByQuery))
	// The session is raised, and the regeneration, sent again, goes
	// through.
	o.waitExample(t, "new codes shown", `$('notice').textContent.startsWith('New recovery codes')`)
	o.wantJS(t, "the prompt closed", `!$('stepup').open`)
	o.screenshot(t, "stepped-up-with-passkey")
	if current, _ := pageSessions(t, o); current != spare {
		t.Errorf("the page's session after the passkey step-up: %s, want the same session, %s, raised", current, spare)
	}
	claims := tokenClaims(t, m.accessToken(t, o))
	if claims.Acr != "aal2" || !slices.Contains(claims.Amr, "user") {
		t.Errorf("the other browser's token after the passkey: acr %q amr %v, want aal2 with user", claims.Acr, claims.Amr)
	}
	var after int64
	o.run(t, chromedp.ActionFunc(func(ctx context.Context) error {
		creds, err := webauthn.GetCredentials(synced).Do(ctx)
		for _, c := range creds {
			after += c.SignCount
		}
		return err
	}))
	if after <= before {
		t.Errorf("the synced passkey's counter went from %d to %d: it was not used", before, after)
	}
}

// pageSessions returns the session of b's page and all the sessions of
// its user, as mySessions lists them.
func pageSessions(t *testing.T, b *browser) (current string, all []string) {
	t.Helper()
	var s struct {
		Current string   `json:"current"`
		All     []string `json:"all"`
	}
	b.run(t, chromedp.Evaluate(`authed('{ mySessions { id current } }').then((d) => ({
		current: (d.mySessions.find((s) => s.current) || {}).id || '',
		all: d.mySessions.map((s) => s.id),
	}))`, &s, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if s.Current == "" {
		t.Fatalf("no current session among %v", s.All)
	}
	return s.Current, s.All
}

// code returns the authenticator app's code now and its step. fresh: a
// step after the last code used, waiting for it if need be (each code is
// accepted once, and so is any code of an earlier step).
func (m *mfaSteps) code(t *testing.T, fresh bool) (string, int64) {
	t.Helper()
	now := time.Now()
	if fresh {
		for now.Unix()/30 <= m.lastStep {
			time.Sleep(time.Until(time.Unix((m.lastStep+1)*30, 0)) + 100*time.Millisecond)
			now = time.Now()
		}
	}
	code, err := auth.TOTPCodeAt(m.secret, now)
	if err != nil {
		t.Fatalf("the key the page showed, %q: %v", m.secret, err)
	}
	return code, now.Unix() / 30
}

// wrongCode is a code that is not code (nor, but by chance, of a step
// next to it).
func wrongCode(code string, _ int64) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+5)%10
	return string(b)
}

// recoveryCodes returns the recovery codes the page shows.
func (m *mfaSteps) recoveryCodes(t *testing.T) []string {
	t.Helper()
	m.b.waitJS(t, "the recovery codes shown", `!$('recovery-codes').hidden && $('recovery-list').children.length > 0`)
	var codes []string
	m.b.run(t, chromedp.Evaluate(`[...$('recovery-list').children].map((li) => li.textContent)`, &codes))
	if len(codes) != 10 {
		t.Errorf("%d recovery codes shown, want 10: %v", len(codes), codes)
	}
	return codes
}

// mfaChallenge returns a new MFA_REQUIRED challenge of the account, by a
// login of the test's own.
func (m *mfaSteps) mfaChallenge(t *testing.T) string {
	t.Helper()
	r := postGraphQL(t, m.url, nil, loginDoc, loginVars(mfaEmail, mfaPassword))
	if code := r.Code(t); code != "MFA_REQUIRED" {
		t.Fatalf("login of an account with a factor: %s, want MFA_REQUIRED", code)
	}
	id, _ := r.Errors[0].Extensions["challengeId"].(string)
	if id == "" {
		t.Fatalf("MFA_REQUIRED without a challengeId: %+v", r.Errors[0])
	}
	return id
}

func (m *mfaSteps) logout(t *testing.T, b *browser) {
	t.Helper()
	b.run(t, chromedp.Click("#logout", chromedp.ByQuery))
	b.waitText(t, "#status", "Signed out")
}

// credentials returns the passkeys the virtual authenticator holds.
func (m *mfaSteps) credentials(t *testing.T) []*webauthn.Credential {
	t.Helper()
	var creds []*webauthn.Credential
	m.b.run(t, chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		creds, err = webauthn.GetCredentials(m.authenticator).Do(ctx)
		return err
	}))
	return creds
}

// signCount is the sum of the virtual authenticator's signature counters:
// it grows by one with each use of a passkey.
func (m *mfaSteps) signCount(t *testing.T) int64 {
	t.Helper()
	var n int64
	for _, c := range m.credentials(t) {
		n += c.SignCount
	}
	return n
}

// accessToken returns the access token the page of b holds (a top-level
// let of app.js: reachable from DevTools, not from other origins).
func (m *mfaSteps) accessToken(t *testing.T, b *browser) string {
	t.Helper()
	var token string
	b.run(t, chromedp.Evaluate(`accessToken`, &token))
	if token == "" {
		t.Fatal("the page holds no access token")
	}
	return token
}

// wantLevel checks the acr of the page's access token, and that its amr
// has method.
func (m *mfaSteps) wantLevel(t *testing.T, when, acr, method string) {
	t.Helper()
	claims := tokenClaims(t, m.accessToken(t, m.b))
	if claims.Acr != acr || !slices.Contains(claims.Amr, method) {
		t.Errorf("access token %s: acr %q amr %v, want %s with %s", when, claims.Acr, claims.Amr, acr, method)
	}
}

type acrClaims struct {
	Acr string   `json:"acr"`
	Amr []string `json:"amr"`
}

// tokenClaims reads the claims of a JWT without verifying it: the server
// verified it, and the test only reads what it says.
func tokenClaims(t *testing.T, token string) acrClaims {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %q is no JWT", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c acrClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// shot scrolls the element of selector into view and saves the tab as
// name.png: a part of the page the step's own screenshot, taken at its
// end, would not show.
func (b *browser) shot(t *testing.T, selector, name string) {
	t.Helper()
	b.run(t, chromedp.ScrollIntoView(selector, chromedp.ByQuery))
	b.screenshot(t, name)
}
