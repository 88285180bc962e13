package auth

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// Benchmarks of the per-login and per-request costs in auth; those of
// access tokens are in package keys.

func BenchmarkHashDefault(b *testing.B) {
	h := mustHasher(b, DefaultArgon2)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(testPassword); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyDefault(b *testing.B) {
	h := mustHasher(b, DefaultArgon2)
	stored := mustHash(b, h, testPassword)
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify(stored, testPassword); !ok || err != nil {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}

// BenchmarkBcryptVerifyCost10 is for comparison with BenchmarkVerifyDefault:
// bcrypt at its default cost, through the same Verify as imported hashes.
func BenchmarkBcryptVerifyCost10(b *testing.B) {
	h := mustHasher(b, cheapArgon2)
	stored, err := bcrypt.GenerateFromPassword([]byte(testPassword), 10)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify(string(stored), testPassword); !ok || err != nil {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}
