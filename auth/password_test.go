package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// cheapArgon2 keeps tests fast; TestDefaultArgon2 covers the real default.
var cheapArgon2 = Argon2Params{Memory: 64, Time: 1, Threads: 1}

const testPassword = "correct horse battery staple"

func mustHasher(tb testing.TB, p Argon2Params) *Hasher {
	tb.Helper()
	h, err := NewHasher(p)
	if err != nil {
		tb.Fatalf("NewHasher(%+v): %v", p, err)
	}
	return h
}

func mustHash(tb testing.TB, h *Hasher, password string) string {
	tb.Helper()
	s, err := h.Hash(password)
	if err != nil {
		tb.Fatalf("Hash: %v", err)
	}
	return s
}

// checkVerify fails the test unless Verify(stored, password) returns
// exactly (wantOK, wantRehash, nil).
func checkVerify(tb testing.TB, h *Hasher, stored, password string, wantOK, wantRehash bool) {
	tb.Helper()
	ok, rehash, err := h.Verify(stored, password)
	if err != nil {
		tb.Fatalf("Verify(%q, %q): unexpected error %v", stored, password, err)
	}
	if ok != wantOK || rehash != wantRehash {
		tb.Fatalf("Verify(%q, %q) = ok %v, rehash %v; want ok %v, rehash %v", stored, password, ok, rehash, wantOK, wantRehash)
	}
}

// argon2idPHC builds a PHC string by hand, so that tests can store hashes
// with salts, keys and parameters Hash would never produce.
func argon2idPHC(p Argon2Params, salt []byte, password string, keyLen uint32) string {
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s",
		p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func TestHasherHash(t *testing.T) {
	h := mustHasher(t, cheapArgon2)

	t.Run("PHCFormat", func(t *testing.T) {
		s := mustHash(t, h, testPassword)
		// 16-byte salt and 32-byte key in unpadded standard base64.
		re := regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
		if !re.MatchString(s) {
			t.Fatalf("Hash = %q, want a match for %s", s, re)
		}
	})
	t.Run("Verifies", func(t *testing.T) {
		s := mustHash(t, h, testPassword)
		checkVerify(t, h, s, testPassword, true, false)
	})
	t.Run("WrongPasswordFails", func(t *testing.T) {
		s := mustHash(t, h, testPassword)
		checkVerify(t, h, s, testPassword+"!", false, false)
		checkVerify(t, h, s, "", false, false)
	})
	t.Run("EmptyPassword", func(t *testing.T) {
		s := mustHash(t, h, "")
		checkVerify(t, h, s, "", true, false)
		checkVerify(t, h, s, " ", false, false)
	})
	t.Run("SaltDiffers", func(t *testing.T) {
		a, b := mustHash(t, h, testPassword), mustHash(t, h, testPassword)
		if a == b {
			t.Fatalf("two hashes of one password are equal: %q", a)
		}
		saltA, saltB := strings.Split(a, "$")[4], strings.Split(b, "$")[4]
		if saltA == saltB {
			t.Fatalf("two hashes share the salt %q", saltA)
		}
	})
}

func TestHasherVerifyRehash(t *testing.T) {
	h := mustHasher(t, cheapArgon2)

	t.Run("SameParamsNoRehash", func(t *testing.T) {
		// Another Hasher with equal parameters: no rehash either.
		other := mustHasher(t, Argon2Params{Memory: 64, Time: 1, Threads: 1})
		checkVerify(t, h, mustHash(t, other, testPassword), testPassword, true, false)
	})
	for _, p := range []Argon2Params{
		{Memory: 128, Time: 1, Threads: 1},
		{Memory: 64, Time: 2, Threads: 1},
		{Memory: 64, Time: 1, Threads: 2},
	} {
		t.Run(fmt.Sprintf("OtherParamsRehash/m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads), func(t *testing.T) {
			stored := mustHash(t, mustHasher(t, p), testPassword)
			checkVerify(t, h, stored, testPassword, true, true)
			// A wrong password never asks for a rehash.
			checkVerify(t, h, stored, "wrong", false, false)
		})
	}
	t.Run("ShortSaltRehash", func(t *testing.T) {
		stored := argon2idPHC(cheapArgon2, []byte("8 bytes!"), testPassword, keyLen)
		checkVerify(t, h, stored, testPassword, true, true)
	})
	t.Run("OtherKeyLenRehash", func(t *testing.T) {
		salt := make([]byte, saltLen)
		rand.Read(salt)
		stored := argon2idPHC(cheapArgon2, salt, testPassword, 16)
		checkVerify(t, h, stored, testPassword, true, true)
	})
}

func TestHasherVerifyBcrypt(t *testing.T) {
	h := mustHasher(t, cheapArgon2)
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(hash), "$2a$") {
		t.Fatalf("bcrypt hash %q does not start with $2a$", hash)
	}
	// $2b$ and $2y$ differ from $2a$ only in how old implementations
	// handled long passwords; x/crypto/bcrypt computes them alike.
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		stored := prefix + strings.TrimPrefix(string(hash), "$2a$")
		name := "Bcrypt" + strings.Trim(prefix, "$")
		t.Run(name+"VerifiesAndRehashes", func(t *testing.T) {
			checkVerify(t, h, stored, testPassword, true, true)
		})
		t.Run(name+"WrongPassword", func(t *testing.T) {
			checkVerify(t, h, stored, testPassword+"x", false, false)
		})
	}
}

func TestHasherVerifyMalformed(t *testing.T) {
	h := mustHasher(t, cheapArgon2)
	valid := mustHash(t, h, testPassword)
	// Make sure the mutations below are what makes each hash malformed.
	checkVerify(t, h, valid, testPassword, true, false)
	parts := strings.Split(valid, "$") // "", "argon2id", "v=19", "m=64,t=1,p=1", salt, key
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	bcryptHash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, stored string
	}{
		{"Empty", ""},
		{"Garbage", "$argon2id$garbage"},
		{"WrongVersion", with(2, "v=18")},
		{"MissingVersion", "$argon2id$" + strings.Join(parts[3:], "$")},
		{"AbsurdMemory", with(3, "m=99999999,t=1,p=1")},
		{"AbsurdTime", with(3, "m=64,t=65,p=1")},
		{"ZeroTime", with(3, "m=64,t=0,p=1")},
		{"ZeroThreads", with(3, "m=64,t=1,p=0")},
		{"TooLittleMemory", with(3, "m=7,t=1,p=1")},
		{"ThreadsOverflow", with(3, "m=64,t=1,p=256")},
		{"NegativeMemory", with(3, "m=-64,t=1,p=1")},
		{"BadBase64Salt", with(4, "!!!!"+parts[4][4:])},
		{"BadBase64Key", with(5, "!!!!"+parts[5][4:])},
		{"PaddedBase64Key", with(5, parts[5]+"=")},
		{"ShortSalt", with(4, base64.RawStdEncoding.EncodeToString([]byte("7 bytes")))},
		{"ShortKey", with(5, base64.RawStdEncoding.EncodeToString(make([]byte, 15)))},
		{"LongKey", with(5, base64.RawStdEncoding.EncodeToString(make([]byte, 65)))},
		{"ExtraField", valid + "$x"},
		{"Argon2i", with(1, "argon2i")},
		{"MD5Crypt", "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/"},
		{"SHA512Crypt", "$6$saltsalt$" + strings.Repeat("a", 86)},
		{"PlainText", testPassword},
		{"BcryptTruncated", string(bcryptHash[:20])},
		{"BcryptBadCost", "$2a$99$" + string(bcryptHash[7:])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(tc.stored, testPassword)
			if err == nil {
				t.Fatalf("Verify(%q): no error", tc.stored)
			}
			if !errors.Is(err, errMalformedHash) {
				t.Errorf("Verify(%q): err = %v, want errMalformedHash", tc.stored, err)
			}
			if ok || rehash {
				t.Errorf("Verify(%q) = ok %v, rehash %v; want false, false", tc.stored, ok, rehash)
			}
		})
	}
}

func TestArgon2ParamsValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       Argon2Params
		wantErr bool
	}{
		{"Default", DefaultArgon2, false},
		{"Cheap", cheapArgon2, false},
		{"Minimum", Argon2Params{Memory: 8, Time: 1, Threads: 1}, false},
		{"MinimumTwoThreads", Argon2Params{Memory: 16, Time: 1, Threads: 2}, false},
		{"Zero", Argon2Params{}, true},
		{"ZeroTime", Argon2Params{Memory: 64, Time: 0, Threads: 1}, true},
		{"ZeroThreads", Argon2Params{Memory: 64, Time: 1, Threads: 0}, true},
		{"ZeroMemory", Argon2Params{Memory: 0, Time: 1, Threads: 1}, true},
		{"TooLittleMemory", Argon2Params{Memory: 7, Time: 1, Threads: 1}, true},
		{"TooLittleMemoryPerThread", Argon2Params{Memory: 15, Time: 1, Threads: 2}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("%+v.Validate() = %v, want error %v", tc.p, err, tc.wantErr)
			}
		})
	}
}

func TestNewHasherRejectsInvalidParams(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Argon2Params
	}{
		{"Zero", Argon2Params{}},
		{"ZeroTime", Argon2Params{Memory: 64, Time: 0, Threads: 1}},
		{"ZeroThreads", Argon2Params{Memory: 64, Time: 1, Threads: 0}},
		{"TooLittleMemory", Argon2Params{Memory: 7, Time: 1, Threads: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := NewHasher(tc.p)
			if err == nil {
				t.Fatalf("NewHasher(%+v): no error", tc.p)
			}
			if h != nil {
				t.Errorf("NewHasher(%+v) returned a Hasher with its error", tc.p)
			}
		})
	}
}

func TestVerifyDummy(t *testing.T) {
	h := mustHasher(t, cheapArgon2)
	t.Run("DoesNotPanic", func(t *testing.T) {
		h.VerifyDummy(testPassword)
		h.VerifyDummy("")
	})
	t.Run("DummyIsWellFormedWithCurrentParams", func(t *testing.T) {
		// The dummy must cost what a real Verify costs: a well-formed hash
		// with the hasher's own parameters, that no password matches.
		p, _, _, err := parseArgon2id(h.dummy)
		if err != nil {
			t.Fatalf("dummy %q: %v", h.dummy, err)
		}
		if p != cheapArgon2 {
			t.Errorf("dummy params = %+v, want %+v", p, cheapArgon2)
		}
		checkVerify(t, h, h.dummy, testPassword, false, false)
	})
}

func TestDefaultArgon2(t *testing.T) {
	want := Argon2Params{Memory: 19456, Time: 2, Threads: 1}
	if DefaultArgon2 != want {
		t.Fatalf("DefaultArgon2 = %+v, want %+v (OWASP minimum)", DefaultArgon2, want)
	}
	h := mustHasher(t, DefaultArgon2)
	s := mustHash(t, h, testPassword)
	if prefix := "$argon2id$v=19$m=19456,t=2,p=1$"; !strings.HasPrefix(s, prefix) {
		t.Fatalf("Hash = %q, want prefix %q", s, prefix)
	}
	checkVerify(t, h, s, testPassword, true, false)
}

func TestHasherRefusesCostlyOrSloppyStoredHashes(t *testing.T) {
	h, err := NewHasher(Argon2Params{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	good, err := h.Hash("password1")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$")
	bc, _ := bcrypt.GenerateFromPassword([]byte("password1"), bcrypt.MinCost)
	cases := map[string]string{
		// Would run for hours if verified.
		"BcryptCost31": "$2a$31$" + string(bc)[7:],
		// 512 MiB: over the memory cap.
		"Argon2Memory512MiB":    strings.Join([]string{"", "argon2id", "v=19", "m=524288,t=1,p=1", parts[4], parts[5]}, "$"),
		"TrailingJunkInVersion": strings.Join([]string{"", "argon2id", "v=19junk", parts[3], parts[4], parts[5]}, "$"),
		"TrailingJunkInParams":  strings.Join([]string{"", "argon2id", "v=19", parts[3] + "xyz", parts[4], parts[5]}, "$"),
	}
	for name, stored := range cases {
		t.Run(name, func(t *testing.T) {
			ok, _, err := h.Verify(stored, "password1")
			if ok || !errors.Is(err, errMalformedHash) {
				t.Errorf("Verify = %v, %v; want false, errMalformedHash", ok, err)
			}
		})
	}
}
