package models

import (
	"fmt"
	"time"
)

// Error codes. They are the outward GraphQL extensions.code values, so the
// error presenter maps an *Error to the wire without a second table.
const (
	Unauthenticated = "UNAUTHENTICATED"
	Forbidden       = "FORBIDDEN"
	BadUserInput    = "BAD_USER_INPUT"
	BadRequest      = "BAD_REQUEST" // not a GraphQL request at all: body, Content-Type, extensions
	NotFound        = "NOT_FOUND"
	RateLimited     = "RATE_LIMITED"
	// EmailNotVerified: with AUTH_REQUIRE_VERIFIED_EMAIL, the account's
	// email must be verified before it signs in.
	EmailNotVerified = "EMAIL_NOT_VERIFIED"
	// AccountDisabled: the right password of an account an admin disabled.
	AccountDisabled = "ACCOUNT_DISABLED"
	// MfaRequired: the right password of a user with a second factor;
	// extensions carry the challenge to answer with verifyMfa.
	MfaRequired = "MFA_REQUIRED"
	// InsufficientUserAuthentication: an @auth(aal, maxAge) the session
	// does not meet (RFC 9470's error); extensions say what is missing.
	InsufficientUserAuthentication = "INSUFFICIENT_USER_AUTHENTICATION"
	// ServiceUnavailable: the server cannot answer correctly for now (a
	// replica out of sync with the others, the database unreachable or
	// unable to write, the audit queue full); the client retries after
	// retryAfter.
	ServiceUnavailable = "SERVICE_UNAVAILABLE"
	Internal           = "INTERNAL_SERVER_ERROR"
)

// Reasons of an Unauthenticated error, sent as extensions.reason, so that
// a client refreshes only when refreshing can help (TokenExpired), and
// never after a wrong password.
const (
	ReasonNoToken             = "NO_TOKEN"
	ReasonTokenExpired        = "TOKEN_EXPIRED"
	ReasonTokenRevoked        = "TOKEN_REVOKED"
	ReasonTokenInvalid        = "TOKEN_INVALID"
	ReasonInvalidCredentials  = "INVALID_CREDENTIALS"
	ReasonRefreshTokenInvalid = "REFRESH_TOKEN_INVALID"
	ReasonRefreshTokenReused  = "REFRESH_TOKEN_REUSED"
)

// Unauthenticatedf returns an Unauthenticated *Error with reason (one of
// the Reason constants) in its extensions.
func Unauthenticatedf(reason, format string, args ...any) *Error {
	return &Error{Code: Unauthenticated, Message: fmt.Sprintf(format, args...), Extensions: map[string]any{"reason": reason}}
}

// Reason returns the extensions.reason of err's coded error, or "".
func Reason(err error) string {
	if e := Coded(err); e != nil {
		r, _ := e.Extensions["reason"].(string)
		return r
	}
	return ""
}

// Error is the one coded error the application returns on purpose. Its
// Message is safe to show to clients; anything that is not an *Error is an
// internal failure and is shown only as "internal error".
type Error struct {
	Code    string
	Message string
	// RetryAfter, when positive, tells the client how long to wait before
	// trying again; it is sent as extensions.retryAfter in whole seconds.
	RetryAfter time.Duration
	// Extensions are further extensions of the GraphQL error, beside code
	// (and retryAfter): what a client needs to act on it, such as the
	// challenge of MFA_REQUIRED. Never anything secret or internal.
	Extensions map[string]any
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and a formatted public message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// RateLimitedf returns a RateLimited *Error that asks the client to wait
// retryAfter (rounded up to whole seconds, at least one).
func RateLimitedf(retryAfter time.Duration, format string, args ...any) *Error {
	return &Error{Code: RateLimited, Message: fmt.Sprintf(format, args...), RetryAfter: retryAfter}
}

// RetryAfterSeconds is e.RetryAfter rounded up to whole seconds, at least
// one: a client told to retry after 0 seconds would hammer at once.
func (e *Error) RetryAfterSeconds() int {
	s := int((e.RetryAfter + time.Second - 1) / time.Second)
	return max(s, 1)
}

// ErrorCode returns the code of err: the Code of an *Error in its chain,
// ServiceUnavailable for a database that is unavailable (see Coded), or
// Internal for anything else (including nil-free unknown errors).
func ErrorCode(err error) string {
	if e := Coded(err); e != nil {
		return e.Code
	}
	return Internal
}

// ErrorMessage returns the public message of err: the Message of an *Error in
// its chain (see Coded), or "internal error" so that no internal detail leaks.
func ErrorMessage(err error) string {
	if e := Coded(err); e != nil {
		return e.Message
	}
	return "internal error"
}

// Wrap annotates *errp with a call description, so that logged errors read as
// a call path: defer models.Wrap(&err, "FindUserByEmail(%q)", email).
// Coded errors pass through unchanged in meaning: errors.As still finds them.
func Wrap(errp *error, format string, args ...any) {
	if *errp != nil {
		*errp = fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), *errp)
	}
}
