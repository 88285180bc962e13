package main

import (
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/authql/authql/httpapi"
)

// readWebAuthn reads the passkeys' relying party: AUTH_WEBAUTHN_RP_ID and
// AUTH_WEBAUTHN_ORIGINS, as set (their defaults, from AUTH_APP_URL and
// AUTH_CORS_ORIGINS, need the port outside production: see
// webAuthnDefaults). It needs c.Production, c.Mail.AppURL and
// c.CORSOrigins.
func readWebAuthn(r *envReader, c *config) {
	if v := strings.ToLower(r.value("AUTH_WEBAUTHN_RP_ID")); v != "" {
		if !validRPID(v) {
			r.bad("AUTH_WEBAUTHN_RP_ID", "%q is not a domain; write the host your app is served from or a parent domain of it, such as example.com, without scheme or port", v)
		}
		c.WebAuthnRPID = v
	}
	for _, v := range strings.Split(r.raw("AUTH_WEBAUTHN_ORIGINS"), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		o, err := parseOrigin(v)
		if err != nil {
			r.bad("AUTH_WEBAUTHN_ORIGINS", "%q %v", v, err)
			continue
		}
		if c.Production && strings.HasPrefix(o, "http://") && !isLocalhost(o) {
			// Browsers offer WebAuthn only in secure contexts anyway.
			r.bad("AUTH_WEBAUTHN_ORIGINS", "%q is http; AUTH_ENV=production needs https origins", v)
			continue
		}
		c.WebAuthnOrigins = append(c.WebAuthnOrigins, o)
	}
	if rp := c.WebAuthnRPID; rp != "" {
		// A browser refuses a ceremony whose RP ID is neither its page's
		// host nor a parent domain of it: better said at start.
		for _, o := range c.WebAuthnOrigins {
			if !underRPID(o, rp) {
				r.bad("AUTH_WEBAUTHN_ORIGINS", "%q is not on %s or a subdomain of it (AUTH_WEBAUTHN_RP_ID): browsers would refuse its passkeys", o, rp)
			}
		}
	}
}

// webAuthnDefaults fills in the relying party's defaults once serve knows
// its port: the RP ID is AUTH_APP_URL's host, the origins AUTH_APP_URL's
// origin and AUTH_CORS_ORIGINS (with the example frontend's, which serve
// has added to c.CORSOrigins by then). Outside production AUTH_APP_URL
// defaults to the example on port (see appURL).
func webAuthnDefaults(c *config, port string) {
	app, err := url.Parse(appURL(c.Mail, port))
	if err != nil {
		return // loadConfig checked AUTH_APP_URL
	}
	if c.WebAuthnRPID == "" {
		c.WebAuthnRPID = strings.ToLower(app.Hostname())
	}
	if len(c.WebAuthnOrigins) == 0 {
		if o, err := parseOrigin(app.Scheme + "://" + app.Host); err == nil {
			c.WebAuthnOrigins = append(c.WebAuthnOrigins, o)
		}
		for _, o := range c.CORSOrigins {
			if !slices.Contains(c.WebAuthnOrigins, o) {
				c.WebAuthnOrigins = append(c.WebAuthnOrigins, o)
			}
		}
	}
}

// listenOrigins completes the origins of c once serve listens on addr:
// the example frontend's (CORS and the cookie), and the passkeys'
// defaults.
func listenOrigins(c *config, addr net.Addr) {
	if c.ExampleUI {
		c.CORSOrigins = append(c.CORSOrigins, httpapi.ExampleOrigins(addr)...)
	}
	webAuthnDefaults(c, portOf(addr))
}

// validRPID reports whether s can be an RP ID: a domain (or localhost),
// no scheme, port, path or address.
func validRPID(s string) bool {
	u, err := url.Parse("https://" + s)
	if err != nil || u.Host != s || u.Port() != "" || strings.ContainsAny(s, "/@[]") {
		return false
	}
	if net.ParseIP(s) != nil {
		return false // WebAuthn's RP ID is a domain (a valid domain string)
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
	}
	return true
}

// underRPID reports whether origin's host is rpID or a subdomain of it.
func underRPID(origin, rpID string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	h := u.Hostname()
	return h == rpID || strings.HasSuffix(h, "."+rpID)
}

// isLocalhost reports whether origin is on localhost, a secure context
// over http too.
func isLocalhost(origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && (u.Hostname() == "localhost" || strings.HasSuffix(u.Hostname(), ".localhost"))
}
