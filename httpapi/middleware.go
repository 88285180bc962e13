package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// noStore keeps tokens in responses out of every cache.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// limitBody reads the request body, up to max bytes, before anything else
// runs: a larger body is refused with HTTP 413 without being read further,
// so that one request cannot make the server buffer or parse without limit.
// Reading it here (rather than only capping the reader) makes the refusal
// the same whether or not the client declared a Content-Length.
func limitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			tooLarge(w, max)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			tooLarge(w, max)
			return
		case err != nil:
			http.Error(w, "could not read the request body", http.StatusBadRequest)
			return
		}
		r.Body = &readBody{Reader: bytes.NewReader(body), b: body}
		next.ServeHTTP(w, r)
	})
}

// readBody is a request body limitBody has read: the GraphQL transport
// takes its bytes from Bytes rather than reading them into another copy.
type readBody struct {
	*bytes.Reader
	b []byte
}

func (readBody) Close() error { return nil }

// Bytes returns the whole body; the caller must not modify it.
func (b *readBody) Bytes() []byte { return b.b }

// tooLarge answers 413 with a GraphQL-shaped error, so that clients that
// only read JSON errors still see why.
func tooLarge(w http.ResponseWriter, max int64) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	fmt.Fprintf(w, `{"errors":[{"message":"request body too large: the limit is %d bytes","extensions":{"code":"PAYLOAD_TOO_LARGE"}}]}`+"\n", max)
}

// cors answers browsers' CORS checks on /query: for an origin that allowed
// accepts, yes with credentials (the refresh cookie, the Authorization
// header); for any other origin, no Access-Control-* header at all, so that
// browsers keep other sites from sending JSON requests or reading answers.
// A preflight (OPTIONS) is answered here; other requests go on to next.
func cors(allowed func(origin string) bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The answer depends on Origin: caches must not give one origin's
		// answer to another.
		h.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		ok := allowed(origin)
		if ok {
			// The request's own origin, never "*": browsers refuse "*" with
			// credentials, and reflecting any origin would be the same hole.
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if r.Method != http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		if !ok {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Request-ID")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
	})
}
