package mail

import (
	"net"
	"testing"
	"time"
)

// TestPlainAllowed: smtp:// stays in clear text only to a loopback peer
// (the address connected to, whatever name led there), or when
// AUTH_SMTP_INSECURE says so.
func TestPlainAllowed(t *testing.T) {
	strict, insecure := &SMTP{}, &SMTP{insecure: true}
	for _, tc := range []struct {
		peer           string
		strict, lifted bool
	}{
		{"127.0.0.1", true, true},
		{"127.0.0.53", true, true},
		{"::1", true, true},
		{"192.0.2.10", false, true},
		{"10.0.0.5", false, true},
		{"2001:db8::1", false, true},
		{"::ffff:127.0.0.1", true, true},
	} {
		peer := &net.TCPAddr{IP: net.ParseIP(tc.peer), Port: 587}
		if got := strict.plainAllowed(peer); got != tc.strict {
			t.Errorf("plainAllowed(%s) = %v, want %v", tc.peer, got, tc.strict)
		}
		if got := insecure.plainAllowed(peer); got != tc.lifted {
			t.Errorf("with AUTH_SMTP_INSECURE, plainAllowed(%s) = %v, want %v", tc.peer, got, tc.lifted)
		}
	}
	if strict.plainAllowed(&net.UnixAddr{Name: "/tmp/smtp", Net: "unix"}) {
		t.Error("plain text allowed to a peer that is not TCP")
	}
}

// TestRedact: the recipient's address is taken out of an SMTP error,
// whatever its case.
func TestRedact(t *testing.T) {
	err := &net.OpError{Op: "550", Err: errString("5.1.1 <Ann.Lee@Example.com>: no such user (ann.lee@example.com)")}
	got := redact(err, "ann.lee@example.com")
	if want := "550: 5.1.1 <<recipient>@Example.com>: no such user (<recipient>@example.com)"; got != want {
		t.Errorf("redact = %q, want %q", got, want)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestDuration: how a mail says how long a link works.
func TestDuration(t *testing.T) {
	for d, want := range map[string]string{"15m": "15 minutes", "1m": "1 minute", "10s": "1 minute", "1h": "1 hour", "90m": "90 minutes", "24h": "24 hours", "23h59m50s": "24 hours"} {
		pd, _ := time.ParseDuration(d)
		if got := Duration(pd); got != want {
			t.Errorf("Duration(%s) = %q, want %q", d, got, want)
		}
	}
}
