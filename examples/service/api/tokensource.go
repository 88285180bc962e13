package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// TokenSource keeps the access token of the service's own authql account
// (a user holding events:read, such as one with authql's role `service`)
// for authz's revocation feed: authz.Config{FeedToken: ts.Token}. authz
// asks for a token at each connection of the feed, and authql ends a feed
// stream when its token expires, so refreshing on demand is enough: no
// background loop.
type TokenSource struct {
	// Endpoint is authql's /query URL; Email and Password the account's.
	Endpoint, Email, Password string
	Client                    *http.Client // default http.DefaultClient
	Now                       func() time.Time

	mu      sync.Mutex // one sign-in or refresh at a time: a refresh token is used once
	access  string
	refresh string
	expires time.Time
}

// Token returns an access token valid for at least another 30 seconds:
// the one held, or a refreshed one, or (with no refresh token, or a
// refused one) one from a new sign-in.
func (s *TokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	if s.access != "" && now().Add(30*time.Second).Before(s.expires) {
		return s.access, nil
	}
	if s.refresh != "" {
		err := s.call(ctx, now(), "refresh", `mutation($t: String!) { refresh(refreshToken: $t) { accessToken refreshToken expiresIn } }`,
			map[string]any{"t": s.refresh})
		if err == nil {
			return s.access, nil
		}
		// Refused (expired, revoked) or failed: sign in again.
		s.refresh = ""
	}
	err := s.call(ctx, now(), "login", `mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken expiresIn } }`,
		map[string]any{"e": s.Email, "p": s.Password})
	return s.access, err
}

// call posts a sign-in or refresh mutation and keeps its tokens.
func (s *TokenSource) call(ctx context.Context, now time.Time, field, query string, vars map[string]any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		Data map[string]*struct {
			AccessToken, RefreshToken string
			ExpiresIn                 int
		}
		Errors []struct {
			Message    string
			Extensions map[string]any
		}
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	p := out.Data[field]
	if len(out.Errors) > 0 || p == nil || p.AccessToken == "" {
		if len(out.Errors) > 0 {
			return fmt.Errorf("%s: %s (%v)", field, out.Errors[0].Message, out.Errors[0].Extensions["code"])
		}
		return errors.New(field + ": no tokens in the answer")
	}
	s.access, s.refresh = p.AccessToken, p.RefreshToken
	s.expires = now.Add(time.Duration(p.ExpiresIn) * time.Second)
	return nil
}
