package secret

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func mustSealer(t *testing.T, k Keys) *Sealer {
	t.Helper()
	s, err := NewSealer(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpen(t *testing.T) {
	k1, k2 := Random(), Random()
	aad := SettingAAD("rate_limit_key")
	s := mustSealer(t, Keys{Current: k1})
	sealed, err := s.Seal(aad, "the secret")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Form", func(t *testing.T) {
		if !strings.HasPrefix(sealed, "enc:v1:"+Fingerprint(k1)+":") || strings.Contains(sealed, "the secret") {
			t.Errorf("sealed = %q, want enc:v1:<fingerprint>:<ciphertext>", sealed)
		}
		again, _ := s.Seal(aad, "the secret")
		if again == sealed {
			t.Error("two seals of one secret are equal: the nonce is not fresh")
		}
	})
	t.Run("RoundTrip", func(t *testing.T) {
		plain, stale, err := s.Open(aad, sealed)
		if err != nil || plain != "the secret" || stale {
			t.Errorf("Open = %q, %v, %v", plain, stale, err)
		}
	})
	t.Run("OtherPlace", func(t *testing.T) {
		// Moved to another row, the value no longer decrypts.
		for _, other := range []string{SettingAAD("other"), SigningKeyAAD("rate_limit_key")} {
			if _, _, err := s.Open(other, sealed); !errors.Is(err, errSealedBad) {
				t.Errorf("Open at %q: err = %v, want errSealedBad", other, err)
			}
		}
	})
	t.Run("Altered", func(t *testing.T) {
		b := []byte(sealed)
		b[len(b)-2] ^= 1
		if _, _, err := s.Open(aad, string(b)); !errors.Is(err, errSealedBad) {
			t.Errorf("err = %v, want errSealedBad", err)
		}
	})
	t.Run("PreviousKeyIsStale", func(t *testing.T) {
		rotated := mustSealer(t, Keys{Current: k2, Previous: [][]byte{k1}})
		plain, stale, err := rotated.Open(aad, sealed)
		if err != nil || plain != "the secret" || !stale {
			t.Errorf("Open = %q, %v, %v, want the secret, stale", plain, stale, err)
		}
	})
	t.Run("KeyMissing", func(t *testing.T) {
		_, _, err := mustSealer(t, Keys{}).Open(aad, sealed)
		if !errors.Is(err, errSealedNoKey) || !strings.Contains(err.Error(), "AUTH_ENCRYPTION_KEY") {
			t.Errorf("err = %v, want errSealedNoKey naming the variable", err)
		}
		_, _, err = mustSealer(t, Keys{Current: k2}).Open(aad, sealed)
		if !errors.Is(err, errSealedOther) || !strings.Contains(err.Error(), Fingerprint(k1)) {
			t.Errorf("err = %v, want errSealedOther naming the missing key's fingerprint", err)
		}
	})
}

func TestPlaintext(t *testing.T) {
	// Without a key secrets are stored as they are; once a key is set,
	// those stored before are read and reported stale, to be sealed.
	off := mustSealer(t, Keys{})
	if v, err := off.Seal(SettingAAD("x"), "plain"); err != nil || v != "plain" {
		t.Errorf("Seal without a key = %q, %v", v, err)
	}
	if off.Fingerprint() != "not set" {
		t.Errorf("Fingerprint = %q, want not set", off.Fingerprint())
	}
	on := mustSealer(t, Keys{Current: Random()})
	if plain, stale, err := on.Open(SettingAAD("x"), "plain"); err != nil || plain != "plain" || !stale {
		t.Errorf("Open of plaintext = %q, %v, %v, want it stale", plain, stale, err)
	}
	if plain, stale, err := on.Open(SettingAAD("x"), ""); err != nil || plain != "" || stale {
		t.Errorf("Open of nothing = %q, %v, %v", plain, stale, err)
	}
}

func TestNewSealerKeySize(t *testing.T) {
	for _, k := range []Keys{{Current: make([]byte, 16)}, {Current: Random(), Previous: [][]byte{make([]byte, 31)}}} {
		if _, err := NewSealer(k); err == nil {
			t.Errorf("NewSealer(%v) accepted a key that is not %d bytes", k, KeySize)
		}
	}
	if a, b := Random(), Random(); len(a) != 32 || bytes.Equal(a, b) {
		t.Errorf("Random = %x, %x", a, b)
	}
}
