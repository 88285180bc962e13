package models

import (
	"net/mail"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// maxEmailBytes bounds an email: RFC 5321's 254 for the normalized form,
// and four times that for what is typed, checked before any Unicode work
// so that a huge field costs nothing.
const maxEmailBytes = 254

// NormalizeEmail returns the form an email is stored, compared and
// rate-limited in, or BadUserInput saying what is wrong with it. It is the
// one normalization of emails: register, login (and its rate-limit key),
// the user CLI, AUTH_ADMIN_EMAIL and the email migration all go through it,
// so that one person has one account however the address is typed.
//
//   - Unicode NFC, then the local part case-folded (Unicode full case
//     folding: "Ä", "ä" and "a\u0308" are one letter; "ß" folds to "ss").
//   - The domain in its ASCII form (IDNA A-labels, UTS 46 lookup mapping):
//     "bücher.example", "BÜCHER.example" and "xn--bcher-kva.example" are
//     one domain, as they are one in DNS and to mail servers.
//
// It refuses what lets two addresses look alike to a person while being
// different to the database: control and format characters (NUL,
// zero-width spaces and joiners, bidirectional overrides), a local part or
// domain label mixing Latin, Cyrillic and Greek letters ("pаypal" with a
// Cyrillic "а"); and domains that are IP addresses, which name a machine
// rather than a mail domain and have many spellings.
func NormalizeEmail(email string) (string, error) {
	if len(email) > 4*maxEmailBytes {
		return "", Errorf(BadUserInput, "email address is too long: at most %d bytes", maxEmailBytes)
	}
	if !utf8.ValidString(email) {
		return "", Errorf(BadUserInput, "email address is not valid UTF-8")
	}
	email = strings.TrimSpace(email)
	for _, r := range email {
		switch {
		case r == 0:
			return "", Errorf(BadUserInput, "email address contains a NUL character")
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			return "", Errorf(BadUserInput, "email address contains an invisible control or format character (such as a zero-width space or a bidirectional override)")
		case unicode.Is(unicode.Co, r) || unicode.Is(unicode.Cs, r) || r == utf8.RuneError:
			return "", Errorf(BadUserInput, "email address contains a private-use or replacement character")
		}
	}
	bad := Errorf(BadUserInput, "invalid email address")
	email = norm.NFC.String(email)
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 {
		return "", bad
	}
	local, domain := email[:at], email[at+1:]
	if isIPDomain(domain) {
		return "", Errorf(BadUserInput, "an email address's domain must be a domain name, not an IP address")
	}
	if mixesScripts(local) {
		return "", Errorf(BadUserInput, "an email address's part before @ must not mix Latin, Cyrillic and Greek letters")
	}
	for _, label := range strings.Split(domain, ".") {
		if mixesScripts(label) {
			return "", Errorf(BadUserInput, "an email address's domain must not mix Latin, Cyrillic and Greek letters within a label")
		}
	}
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return "", Errorf(BadUserInput, "an email address's domain is not a valid domain name")
	}
	// Folding can leave a string that is not NFC (a folded letter that
	// composes with a following mark): NFC again, so that normalizing is
	// idempotent and the migration can compare stored forms with it.
	email = norm.NFC.String(cases.Fold().String(local)) + "@" + ascii
	if len(email) > maxEmailBytes {
		return "", Errorf(BadUserInput, "email address is too long: at most %d bytes", maxEmailBytes)
	}
	// Only a bare address: mail.ParseAddress alone would also accept a
	// display name ("Bob <bob@example.com>").
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		return "", bad
	}
	if !strings.Contains(ascii, ".") || strings.HasPrefix(ascii, ".") || strings.HasSuffix(ascii, ".") {
		return "", bad
	}
	return email, nil
}

// isIPDomain reports whether domain is an address literal ("[192.0.2.1]",
// "[IPv6:…]") or an IP address, or looks like one: a last label of digits
// only, which no top-level domain is ("3232235777.0" and other spellings
// that resolvers read as addresses).
func isIPDomain(domain string) bool {
	if strings.HasPrefix(domain, "[") {
		return true
	}
	if _, err := netip.ParseAddr(domain); err == nil {
		return true
	}
	last := domain[strings.LastIndexByte(domain, '.')+1:]
	if last == "" {
		return false
	}
	for _, r := range last {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// confusableScripts are the scripts whose letters look alike: a string
// mixing two of them is how a lookalike of another address is made.
var confusableScripts = []*unicode.RangeTable{unicode.Latin, unicode.Cyrillic, unicode.Greek}

// mixesScripts reports whether s has letters of more than one of the
// confusable scripts. Digits, punctuation and combining marks belong to
// none of them and do not count.
func mixesScripts(s string) bool {
	seen := -1
	for _, r := range s {
		if r < utf8.RuneSelf && !unicode.IsLetter(r) {
			continue
		}
		for i, script := range confusableScripts {
			if unicode.Is(script, r) {
				if seen >= 0 && seen != i {
					return true
				}
				seen = i
			}
		}
	}
	return false
}
