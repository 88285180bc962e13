package authz

import (
	"context"
	"net/http"
	"strings"
)

type ctxKey struct{}

// authResult is what the middleware learned of a request's token.
type authResult struct {
	p   *Principal
	err *authError // why there is no principal
}

// Middleware verifies the bearer token of each request and puts the
// principal, or the reason there is none, in the request's context
// (PrincipalFrom). It never rejects a request, as authql's does not: a
// missing or bad token fails only the fields whose @auth requires one, so
// public fields keep working for a client holding a stale token.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := v.WithToken(r.Context(), r.Header.Get("Authorization"))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// WithToken returns ctx with the principal of an Authorization header's
// value ("Bearer <token>"; "" for none), or the reason there is none.
func (v *Verifier) WithToken(ctx context.Context, authorization string) context.Context {
	var res authResult
	if token, ok := bearerToken(authorization); ok {
		res.p, res.err = v.verify(ctx, token)
	} else if authorization != "" {
		res.err = errMalformed
	} else {
		res.err = errNoToken
	}
	return context.WithValue(ctx, ctxKey{}, res)
}

// PrincipalFrom returns the request's principal, or nil and the
// UNAUTHENTICATED (or SERVICE_UNAVAILABLE) error saying why there is none.
func PrincipalFrom(ctx context.Context) (*Principal, error) {
	res, ok := ctx.Value(ctxKey{}).(authResult)
	switch {
	case !ok:
		return nil, errNoToken.gql()
	case res.err != nil:
		return nil, res.err.gql()
	}
	return res.p, nil
}

// bearerToken extracts the token of "Bearer <token>"; the scheme is
// case-insensitive (RFC 9110 §11.1).
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
