package keys

import (
	"context"
	"testing"
	"time"

	"github.com/authql/authql/internal/testdb"
)

// Benchmarks of the per-request cost of access tokens. The clock is fixed,
// so the token stays valid however long a run takes.

func BenchmarkSignerVerify(b *testing.B) {
	s, _ := newTestSigner(b, testKey)
	token, _, err := s.Issue("user-1", "sess-1", []string{"admin", "user"}, 15*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(context.Background(), token); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignerIssue(b *testing.B) {
	s, _ := newTestSigner(b, testKey)
	roles := []string{"admin", "user"}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Issue("user-1", "sess-1", roles, 15*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyByAlg is the per-request cost of checking an access token
// signed with each algorithm AUTH_JWT_ALG offers, keys from the key store.
func BenchmarkVerifyByAlg(b *testing.B) {
	for _, alg := range []string{AlgHS256, AlgEdDSA, AlgES256} {
		b.Run(alg, func(b *testing.B) {
			e := newKeyEnv(b, testdb.SQLite(b), Config{Alg: alg})
			token := e.issue(b)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.signer.Verify(context.Background(), token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
