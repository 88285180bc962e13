package auth

import (
	"strings"
	"testing"

	"github.com/authql/authql/models"
)

func TestRecoveryCodes(t *testing.T) {
	h, err := NewHasher(Argon2Params{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	codes := newRecoveryCodes()
	if len(codes) != recoveryCodeCount {
		t.Fatalf("%d codes", len(codes))
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if len(c) != 19 || seen[c] {
			t.Fatalf("code %q: wrong shape or repeated", c)
		}
		seen[c] = true
	}
	hashes := h.hashRecoveryCodes(codes)
	stored := make([]models.RecoveryCode, len(hashes))
	for i, hash := range hashes {
		if strings.Contains(hash, strings.ReplaceAll(codes[i], "-", "")) {
			t.Fatal("a hash holds its code")
		}
		stored[i] = models.RecoveryCode{ID: string(rune('a' + i)), Hash: hash}
	}
	// Typed in lower case, with spaces, O for 0 and l for 1.
	typed := strings.ToLower(strings.ReplaceAll(codes[3], "-", " "))
	typed = strings.NewReplacer("0", "o", "1", "l").Replace(typed)
	canon, ok := normalizeRecoveryCode(typed)
	if !ok {
		t.Fatalf("normalize(%q) refused", typed)
	}
	if got := matchRecoveryCode(stored, canon); got != "d" {
		t.Errorf("match = %q, want d", got)
	}
	now := stored[3].CreatedAt
	stored[3].UsedAt = &now
	if got := matchRecoveryCode(stored, canon); got != "" {
		t.Errorf("a used code matched: %q", got)
	}
	for _, bad := range []string{"", "ABCD", strings.Repeat("A", 17), "ABCD-EFGH-JKMN-PQR!", "ÄBCD-EFGH-JKMN-PQRS"} {
		if _, ok := normalizeRecoveryCode(bad); ok {
			t.Errorf("normalize(%q) accepted", bad)
		}
	}
}

// BenchmarkRecoveryCodeCheck: checking a recovery code against a batch of
// ten, at the default argon2id cost, costs one hash (the batch shares its
// salt), as one password verification does; hashed with a salt each, it
// would cost up to ten. Compare with BenchmarkVerifyDefault in the same
// run.
func BenchmarkRecoveryCodeCheck(b *testing.B) {
	h := mustHasher(b, DefaultArgon2)
	codes := newRecoveryCodes()
	stored := make([]models.RecoveryCode, len(codes))
	for i, hash := range h.hashRecoveryCodes(codes) {
		stored[i] = models.RecoveryCode{ID: string(rune('a' + i)), Hash: hash}
	}
	last, _ := normalizeRecoveryCode(codes[len(codes)-1])
	b.ReportAllocs()
	for b.Loop() {
		if matchRecoveryCode(stored, last) == "" {
			b.Fatal("no match")
		}
	}
}
