package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/authql/authql/auth"
	"github.com/authql/authql/internal/authtest"
	"github.com/authql/authql/models"
)

// TestReplicasAccounts: an account disabled, deleted or whose password
// changed on one replica, while its tokens are in use on another: the
// other refuses them without restarting, polling or waiting for the purge.
func TestReplicasAccounts(t *testing.T) {
	t.Run("DisabledOnAIsRefusedOnB", func(t *testing.T) {
		c := newCluster(t, nil)
		a, b := c.start(t, nil), c.start(t, nil)
		root := loginAt(t, a, "root@example.com", "root-password")
		u := registerAt(t, b, "ada@example.com", "password1")
		after := inUseUntilRefused(t, b, u.Access, func() {
			gql(t, a, root.Access, fmt.Sprintf(`mutation { disableUser(userId: %q, reason: "abuse") { id } }`, u.UserID)).OK(t)
		})
		t.Logf("requests B served with the token after the disable returned: %d", after)
		if code := refreshAt(t, b, u.Refresh).Code(t); code != models.Unauthenticated {
			t.Errorf("refresh at B: %s, want UNAUTHENTICATED", code)
		}
		r := postGraphQL(t, b, nil, loginDoc, map[string]any{"e": "ada@example.com", "p": "password1"})
		if code := r.Code(t); code != models.AccountDisabled {
			t.Errorf("login at B: %s, want ACCOUNT_DISABLED", code)
		}
		// Enabled on B, A lets the user in again at once; the old token
		// stays refused on both.
		gql(t, b, loginAt(t, b, "root@example.com", "root-password").Access,
			fmt.Sprintf(`mutation { enableUser(userId: %q) { id } }`, u.UserID)).OK(t)
		back := loginAt(t, a, "ada@example.com", "password1")
		if code, msg := meError(t, b, back.Access); code != "" {
			t.Errorf("me at B after enabling: %s %s", code, msg)
		}
		for _, srv := range []string{a, b} {
			if code, _ := meError(t, srv, u.Access); code != models.Unauthenticated {
				t.Errorf("the token from before at %s after enabling: %q, want UNAUTHENTICATED", srv, code)
			}
		}
	})

	t.Run("DeletedOnAIsRefusedOnB", func(t *testing.T) {
		c := newCluster(t, nil)
		a, b := c.start(t, nil), c.start(t, nil)
		u := registerAt(t, b, "ada@example.com", "password1")
		other := loginAt(t, a, "ada@example.com", "password1")
		after := inUseUntilRefused(t, b, u.Access, func() {
			gql(t, a, other.Access, `mutation { deleteAccount(password: "password1") }`).OK(t)
		})
		t.Logf("requests B served with the token after the deletion returned: %d", after)
		if code := refreshAt(t, b, u.Refresh).Code(t); code != models.Unauthenticated {
			t.Errorf("refresh at B: %s, want UNAUTHENTICATED", code)
		}
	})

	t.Run("PasswordChangedOnAEndsTheOtherSessionsOnB", func(t *testing.T) {
		// The notice goes to a directory of the test's, not beside the
		// package's sources (the working directory).
		c := newCluster(t, map[string]string{"AUTH_MAIL_DIR": t.TempDir()})
		a, b := c.start(t, nil), c.start(t, nil)
		u := registerAt(t, b, "ada@example.com", "password1")
		here := loginAt(t, a, "ada@example.com", "password1")
		var fresh tokens
		inUseUntilRefused(t, b, u.Access, func() {
			r := gql(t, a, here.Access, `mutation { changePassword(currentPassword: "password1", newPassword: "new-password") { `+payloadFields+` } }`).OK(t)
			fresh = tokensOf(r, "changePassword")
		})
		if code, msg := meError(t, b, fresh.Access); code != "" {
			t.Errorf("me at B with the changed session's new token: %s %s", code, msg)
		}
		if code := refreshAt(t, b, here.Refresh).Code(t); code != models.Unauthenticated {
			t.Errorf("the changed session's old refresh token at B: %s, want UNAUTHENTICATED", code)
		}
		refreshAt(t, b, fresh.Refresh).OK(t)
	})
}

// inUseUntilRefused uses token on the server at u (me, in a loop) while
// change runs, and until the server refuses it as UNAUTHENTICATED, which
// must happen within propagationWait of change returning. It returns how
// many requests started after change returned still succeeded: the
// window of the change's notification to the server.
func inUseUntilRefused(t *testing.T, u, token string, change func()) (servedAfter int) {
	t.Helper()
	if code, msg := meError(t, u, token); code != "" {
		t.Fatalf("me before the change: %s %s", code, msg)
	}
	type use struct {
		start time.Time
		code  string
		err   error
	}
	uses := make(chan use)
	stop := make(chan struct{})
	go func() {
		defer close(uses)
		for {
			start := time.Now()
			code, err := meCode(u, token)
			select {
			case uses <- use{start, code, err}:
			case <-stop:
				return
			}
			if code != "" || err != nil {
				return
			}
		}
	}()
	defer close(stop)
	change()
	returned := time.Now()
	deadline := time.After(propagationWait)
	for {
		select {
		case r, ok := <-uses:
			switch {
			case !ok:
				t.Fatal("the loop ended without a refusal")
			case r.err != nil:
				t.Fatalf("me at %s: %v", u, r.err)
			case r.code == "":
				if r.start.After(returned) {
					servedAfter++
				}
			case r.code != models.Unauthenticated:
				t.Fatalf("me at %s: %s, want UNAUTHENTICATED", u, r.code)
			default:
				return servedAfter
			}
		case <-deadline:
			t.Fatalf("the token still works at %s %s after the change returned", u, propagationWait)
		}
	}
}

// meCode asks for me with token on the server at u and returns the code
// of its error, or "" when it succeeds. It never fails the test: it runs
// beside the test's goroutine.
func meCode(u, token string) (string, error) {
	body := strings.NewReader(`{"query":"{ me { id } }"}`)
	req, err := http.NewRequest(http.MethodPost, u+"/query", body)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", bearer(token))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var r gqlResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return "", err
	}
	if len(r.Errors) == 0 {
		return "", nil
	}
	code, _ := r.Errors[0].Extensions["code"].(string)
	return code, nil
}

// TestReplicasAalMax: a second factor enrolled on one replica shows in
// aal_max at the next refresh on another that had cached the user without
// one, and its removal too: the factor's change is published like any
// change of the user.
func TestReplicasAalMax(t *testing.T) {
	c := newCluster(t, nil)
	a, b := c.start(t, nil), c.start(t, nil)
	u := registerAt(t, b, "ada@example.com", "password1")
	aalMax := func() string {
		r := refreshAt(t, b, u.Refresh).OK(t)
		u = tokensOf(r, "refresh")
		v, _ := authtest.Claims(t, u.Access)["aal_max"].(string)
		return v
	}
	other := loginAt(t, a, "ada@example.com", "password1")
	// A barrier: events reach B in commit order, so once B refuses a token
	// logged out at A after the login, B has applied the login's event
	// (which drops the user from its cache) and the user B caches next
	// stays until the factor's own event.
	z := registerAt(t, a, "zed@example.com", "password1")
	gql(t, a, z.Access, `mutation { logout }`).OK(t)
	waitFor(t, "B refusing a token logged out at A", func() bool { code, _ := meError(t, b, z.Access); return code == models.Unauthenticated })
	if got := aalMax(); got != "aal1" {
		t.Fatalf("aal_max = %q before any factor, want aal1", got)
	}
	en := gql(t, a, other.Access, `mutation { enrollTotp { factorId secret } }`).OK(t)
	code, err := auth.TOTPCodeAt(en.Str("enrollTotp", "secret"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := postGraphQL(t, a, map[string]string{"Authorization": bearer(other.Access)},
		`mutation($f: ID!, $c: String!) { confirmTotp(factorId: $f, code: $c, signOutOtherSessions: false) { factor { id } session { accessToken } } }`,
		map[string]any{"f": en.Str("enrollTotp", "factorId"), "c": code}).OK(t)
	waitFor(t, "aal_max aal2 at B after the factor was confirmed at A", func() bool { return aalMax() == "aal2" })
	gql(t, a, r.Str("confirmTotp", "session", "accessToken"), fmt.Sprintf(`mutation { removeMfaFactor(id: %q) }`, r.Str("confirmTotp", "factor", "id"))).OK(t)
	waitFor(t, "aal_max aal1 at B after the factor was removed at A", func() bool { return aalMax() == "aal1" })
}
