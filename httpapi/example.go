package httpapi

import (
	"net"
	"net/http"
	"strconv"

	"github.com/authql/authql/examples/web"
)

// ExamplePath is where AUTH_EXAMPLE_UI=true serves examples/web.
const ExamplePath = "/example/"

// examplePages are the example's pages besides ExamplePath itself, below
// it: the mailed links open them (AUTH_APP_URL defaults to the example
// outside production, and the link paths are the contract:
// ${AUTH_APP_URL}/reset#token=…). Each is index.html, whose script shows
// the page of location.pathname.
var examplePages = []string{"forgot", "reset", "verify", "confirm-email"}

// exampleHandler serves the example frontend's files, and index.html at
// each of examplePages.
func exampleHandler() http.Handler {
	files := http.StripPrefix(ExamplePath[:len(ExamplePath)-1], http.FileServerFS(web.Files))
	pages := make(map[string]bool, len(examplePages))
	for _, p := range examplePages {
		pages[ExamplePath+p] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if pages[r.URL.Path] {
			// The directory's index, so that the page's relative links
			// (app.js, style.css) resolve as at ExamplePath.
			r = r.Clone(r.Context())
			r.URL.Path, r.URL.RawPath = ExamplePath, ""
		}
		h := w.Header()
		// The page runs only its own files and talks only to this origin:
		// no inline script (the usual XSS payload), no third party, no
		// framing (clickjacking), no form posted elsewhere. Images may be
		// data: URIs, for the QR code of an authenticator key, which
		// authql draws as an SVG so that no third party sees the key: an
		// SVG shown by <img> runs no script and loads nothing.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "+
			"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Revalidate on each load, so that an edited example shows at once.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// ExampleOrigins are the origins of the example frontend as browsers on
// this machine reach it at addr, the server's listening address: the
// example's requests carry them in Origin, and the refresh cookie is only
// honoured for allowed origins. Loopback only: over plain http a browser
// keeps a Secure cookie only for localhost and loopback addresses, which it
// treats as secure contexts; anywhere else the example needs https.
func ExampleOrigins(addr net.Addr) []string {
	port := 8080
	if a, ok := addr.(*net.TCPAddr); ok {
		port = a.Port
	}
	p := strconv.Itoa(port)
	return []string{"http://localhost:" + p, "http://127.0.0.1:" + p, "http://[::1]:" + p}
}
