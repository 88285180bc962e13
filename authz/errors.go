package authz

import (
	"errors"
	"fmt"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Error codes and reasons: the values of extensions.code and
// extensions.reason, the same as authql's (models/error.go).
const (
	CodeUnauthenticated                = "UNAUTHENTICATED"
	CodeForbidden                      = "FORBIDDEN"
	CodeInsufficientUserAuthentication = "INSUFFICIENT_USER_AUTHENTICATION"
	CodeServiceUnavailable             = "SERVICE_UNAVAILABLE"

	ReasonNoToken      = "NO_TOKEN"
	ReasonTokenExpired = "TOKEN_EXPIRED"
	ReasonTokenRevoked = "TOKEN_REVOKED"
	ReasonTokenInvalid = "TOKEN_INVALID"
)

// authError is why a request has no principal or fails a rule. It becomes
// a fresh *gqlerror.Error each time it is returned (gqlgen sets the path
// on the error it is given, so one value must never be shared).
type authError struct {
	code, reason, msg string
	retryAfter        time.Duration
	ext               map[string]any
}

func (e *authError) Error() string { return e.code + ": " + e.msg }

// gql returns e as the GraphQL error a presenter passes through: message,
// extensions.code, and reason, retryAfter (whole seconds) and the step-up
// extensions when set.
func (e *authError) gql() *gqlerror.Error {
	ext := map[string]any{"code": e.code}
	if e.reason != "" {
		ext["reason"] = e.reason
	}
	if e.retryAfter > 0 {
		ext["retryAfter"] = max(int((e.retryAfter+time.Second-1)/time.Second), 1)
	}
	for k, v := range e.ext {
		ext[k] = v
	}
	return &gqlerror.Error{Message: e.msg, Extensions: ext, Err: e}
}

func unauthenticated(reason, msg string) *authError {
	return &authError{code: CodeUnauthenticated, reason: reason, msg: msg}
}

var (
	errNoToken      = unauthenticated(ReasonNoToken, "authentication required")
	errMalformed    = unauthenticated(ReasonTokenInvalid, "malformed Authorization header: expected \"Bearer <token>\"")
	errTokenExpired = unauthenticated(ReasonTokenExpired, "access token expired")
	errTokenInvalid = unauthenticated(ReasonTokenInvalid, "invalid access token")
	errTokenRevoked = unauthenticated(ReasonTokenRevoked, "access token revoked")
	// errStaleScope: the user's roles changed after the token was issued,
	// so its scope may grant what the user no longer holds. TOKEN_EXPIRED
	// makes the client refresh, and the new token's scope is current.
	errStaleScope = unauthenticated(ReasonTokenExpired, "the user's roles changed since this access token was issued: refresh it")
	// errFeedDown: the revocation feed has been down longer than
	// FeedMaxLag, so a revoked token could pass: no answer is better than
	// one that ignores a logout (authql's replicas do the same).
	errFeedDown = &authError{code: CodeServiceUnavailable, msg: "authentication is temporarily unavailable; retry shortly", retryAfter: time.Second}
)

func forbidden(format string, args ...any) *authError {
	return &authError{code: CodeForbidden, msg: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the extensions.code of an error authz returned, or "".
func ErrorCode(err error) string {
	var e *authError
	if errors.As(err, &e) {
		return e.code
	}
	return ""
}

// ErrorReason returns the extensions.reason of an error authz returned, or "".
func ErrorReason(err error) string {
	var e *authError
	if errors.As(err, &e) {
		return e.reason
	}
	return ""
}
