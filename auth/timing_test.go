package auth

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/authql/authql/internal/testdb"
	"github.com/authql/authql/models"
)

// newLoginService is a service on the database of dsn (a new SQLite one
// when empty) hashing with p.
func newLoginService(tb testing.TB, dsn string, p Argon2Params) *Service {
	tb.Helper()
	if dsn == "" {
		dsn = testdb.SQLite(tb)
	}
	db := testdb.Open(tb, dsn)
	s, err := NewService(context.Background(), db, []byte(strings.Repeat("k", 32)), Config{
		Issuer: "authql", Audience: "authql", AccessTTL: 15 * time.Minute, RefreshTTL: time.Hour,
		Signup: true, Argon2: p,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// addUserWithHash stores a user whose password hash was made elsewhere:
// with older argon2 parameters, or bcrypt imported from another system.
func addUserWithHash(tb testing.TB, s *Service, email, hash string) {
	tb.Helper()
	u := &models.User{ID: uuid.NewString(), Email: email, PasswordHash: hash}
	if err := models.CreateUser(context.Background(), s.db, u, []string{models.RoleUser}, nil); err != nil {
		tb.Fatal(err)
	}
}

func TestFailTimingTarget(t *testing.T) {
	ft := newFailTiming()
	for _, d := range []time.Duration{10, 10, 900, 10, 10} { // one slow outlier
		ft.record("fast", d*time.Millisecond)
	}
	ft.record("slow", 40*time.Millisecond)
	if got := ft.target(); got != 40*time.Millisecond {
		t.Errorf("target = %s, want the slow class's 40ms (the fast class's median is 10ms)", got)
	}
	var totals []time.Duration
	ft.wait = func(_ context.Context, total, _ time.Duration) { totals = append(totals, total) }
	ft.pad(context.Background(), 1, 10*time.Millisecond)
	ft.pad(context.Background(), 2, 20*time.Millisecond)
	if len(totals) != 2 || totals[0] != 40*time.Millisecond || totals[1] != 80*time.Millisecond {
		t.Errorf("padded to %v, want [40ms 80ms]", totals)
	}
}

// TestFailedLoginsPadToOneTarget: an unknown email, a wrong password for
// an account of the current parameters, of older ones and of bcrypt all
// pad to the same total, the slowest class's; a password typed in a
// non-NFC form costs two verifications for known and unknown emails
// alike, and pads to twice the target. Counts and computed targets only:
// no wall-clock time is compared.
func TestFailedLoginsPadToOneTarget(t *testing.T) {
	s := newLoginService(t, "", cheapArgon2)
	older := mustHasher(t, Argon2Params{Memory: 128, Time: 1, Threads: 1})
	addUserWithHash(t, s, "older@example.com", mustHash(t, older, testPassword))
	imported, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	addUserWithHash(t, s, "bcrypt@example.com", string(imported))
	if _, err := s.AddUser(context.Background(), "current@example.com", testPassword, []string{models.RoleUser}); err != nil {
		t.Fatal(err)
	}
	// A class far slower than any real one here, as a cost raised or
	// lowered leaves: every failure must pad to it.
	for range classSamples {
		s.timing.record("argon2id m=999999,t=9,p=1", time.Hour)
	}
	var totals []time.Duration
	s.timing.wait = func(_ context.Context, total, _ time.Duration) { totals = append(totals, total) }
	counts := func() map[string]int {
		m := map[string]int{}
		for k, c := range s.timing.classes {
			m[k] = c.count
		}
		return m
	}
	for _, tc := range []struct {
		name, email, password string
		verifications         int
	}{
		{"UnknownEmail", "nobody@example.com", "wrong-password", 1},
		{"CurrentParams", "current@example.com", "wrong-password", 1},
		{"OlderParams", "older@example.com", "wrong-password", 1},
		{"Bcrypt", "bcrypt@example.com", "wrong-password", 1},
		{"UnknownEmailNonNFC", "nobody@example.com", "cafe\u0301-wrong", 2},
		{"BcryptNonNFC", "bcrypt@example.com", "cafe\u0301-wrong", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			totals = nil
			before := counts()
			if _, err := s.Login(context.Background(), tc.email, tc.password); models.ErrorCode(err) != models.Unauthenticated {
				t.Fatalf("Login = %v, want UNAUTHENTICATED", err)
			}
			if want := time.Duration(tc.verifications) * time.Hour; len(totals) != 1 || totals[0] != want {
				t.Errorf("padded to %v, want [%s]", totals, want)
			}
			n := 0
			for k, c := range counts() {
				n += c - before[k]
			}
			if n != tc.verifications {
				t.Errorf("%d verifications, want %d", n, tc.verifications)
			}
		})
	}
	// Successes are not padded.
	totals = nil
	for _, email := range []string{"current@example.com", "older@example.com", "bcrypt@example.com"} {
		if _, err := s.Login(context.Background(), email, testPassword); err != nil {
			t.Fatalf("Login(%s) = %v", email, err)
		}
	}
	if len(totals) != 0 {
		t.Errorf("successful logins padded: %v", totals)
	}
}

// TestLoginRehashesTypedForm: a hash of a non-NFC password made before
// passwords were normalized logs in with the form typed then, costing one
// more verification only because the forms differ, and is replaced by a
// hash of the NFC form.
func TestLoginRehashesTypedForm(t *testing.T) {
	s := newLoginService(t, "", cheapArgon2)
	const nfc, nfd = "caf\u00e9-au-lait", "cafe\u0301-au-lait"
	addUserWithHash(t, s, "old@example.com", mustHash(t, mustHasher(t, cheapArgon2), nfd))
	if _, err := s.Login(context.Background(), "old@example.com", nfd); err != nil {
		t.Fatal(err)
	}
	u, err := models.UserByEmail(context.Background(), s.db, "old@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := s.hasher.Verify(u.PasswordHash, nfc); !ok {
		t.Error("the stored hash is not of the NFC form after the login")
	}
}

func TestCheckPasswordBytes(t *testing.T) {
	for _, p := range []string{"pass\x00word", "pass\xffword", strings.Repeat("a", MaxPasswordBytes+1)} {
		if err := checkPasswordBytes(p); models.ErrorCode(err) != models.BadUserInput {
			t.Errorf("checkPasswordBytes(%q) = %v, want BAD_USER_INPUT", p, err)
		}
	}
	if p, err := newPassword("cafe\u0301-au-lait"); err != nil || p != "caf\u00e9-au-lait" {
		t.Errorf("newPassword = %q, %v; want the NFC form", p, err)
	}
}

func TestTruncateHeader(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 10, "abc"},
		{"ab\xffc", 10, "ab\ufffdc"},
		{"a\x00b", 10, "a\ufffdb"},
		{"aaé", 3, "aa"}, // é is two bytes: not cut inside
		{"a€", 3, "a"},
		{strings.Repeat("\xff", 100), 6, "\ufffd\ufffd"},
	} {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestMeasureHashClasses: the classes of the stored hashes are measured
// before any login, one verification each, the current one not again.
func TestMeasureHashClasses(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) { testMeasureHashClasses(t, dsn) })
}

func testMeasureHashClasses(t *testing.T, dsn string) {
	s := newLoginService(t, dsn, cheapArgon2)
	older := mustHasher(t, Argon2Params{Memory: 128, Time: 1, Threads: 1})
	for i := range 3 {
		addUserWithHash(t, s, fmt.Sprintf("older%d@example.com", i), mustHash(t, older, testPassword))
	}
	imported, _ := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	addUserWithHash(t, s, "bcrypt@example.com", string(imported))
	addUserWithHash(t, s, "broken@example.com", "not-a-hash")
	if _, err := s.AddUser(context.Background(), "current@example.com", testPassword, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.MeasureHashClasses(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for k, c := range s.timing.classes {
		got[k] = c.count
	}
	want := map[string]int{
		"argon2id v=19 m=64,t=1,p=1":  1, // measured at NewService only
		"argon2id v=19 m=128,t=1,p=1": 1,
		"bcrypt 04":                   1,
		"malformed":                   1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("verifications by class = %v, want %v", got, want)
	}
}
