package auth

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashPasswordFormatAndVerify(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !phcRE.MatchString(h) {
		t.Fatalf("hash %q is not in the expected PHC format", h)
	}
	ok, err := VerifyPassword(h, "correct horse")
	if err != nil || !ok {
		t.Fatalf("VerifyPassword(right) = %v, %v", ok, err)
	}
	for _, wrong := range []string{"", "correct hors", "correct horse ", "Correct horse"} {
		ok, err := VerifyPassword(h, wrong)
		if err != nil || ok {
			t.Errorf("VerifyPassword(%q) = %v, %v; want false, nil", wrong, ok, err)
		}
	}
	h2, _ := HashPassword("correct horse")
	if h2 == h {
		t.Error("two hashes of the same password are equal: salt not random")
	}
	if NeedsRehash(h) {
		t.Error("NeedsRehash(fresh hash) = true")
	}
}

// TestArgon2idEncoding checks that the PHC fields really are the salt and
// the argon2id key, by recomputing the key independently.
func TestArgon2idEncoding(t *testing.T) {
	salt := []byte("0123456789abcdef")
	h := encodeArgon2id("pw", salt, 64, 3, 2, 20)
	f := strings.Split(h, "$")
	if f[3] != "m=64,t=3,p=2" {
		t.Fatalf("params field %q", f[3])
	}
	if f[4] != base64.RawStdEncoding.EncodeToString(salt) {
		t.Fatalf("salt field %q", f[4])
	}
	want := argon2.IDKey([]byte("pw"), salt, 3, 64, 2, 20)
	if f[5] != base64.RawStdEncoding.EncodeToString(want) {
		t.Fatalf("key field %q", f[5])
	}
	// Verification uses the parameters stored in the hash, not ours.
	if ok, err := VerifyPassword(h, "pw"); err != nil || !ok {
		t.Fatalf("verify non-default params: %v %v", ok, err)
	}
	if !NeedsRehash(h) {
		t.Error("NeedsRehash(non-default params) = false")
	}
}

func TestVerifyBcrypt(t *testing.T) {
	// Known vector from the crypt_blowfish test suite.
	ok, err := VerifyPassword("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U")
	if err != nil || !ok {
		t.Fatalf("known bcrypt vector: %v %v", ok, err)
	}
	b, err := bcrypt.GenerateFromPassword([]byte("imported"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		h := prefix + string(b[4:])
		if ok, err := VerifyPassword(h, "imported"); err != nil || !ok {
			t.Errorf("%s right password: %v %v", prefix, ok, err)
		}
		if ok, err := VerifyPassword(h, "imported!"); err != nil || ok {
			t.Errorf("%s wrong password: %v %v", prefix, ok, err)
		}
	}
	if !NeedsRehash(string(b)) {
		t.Error("NeedsRehash(bcrypt) = false")
	}
}

func TestVerifyMalformed(t *testing.T) {
	good, _ := HashPassword("x")
	f := strings.Split(good, "$")
	bad := []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=19456,t=2,p=1$" + f[4] + "$" + f[5],
		"$argon2id$v=16$m=19456,t=2,p=1$" + f[4] + "$" + f[5],
		"$argon2id$v=19$m=19456,t=2$" + f[4] + "$" + f[5],
		"$argon2id$v=19$m=19456,t=2,p=1,x=3$" + f[4] + "$" + f[5],
		"$argon2id$v=19$m=19456,t=0,p=1$" + f[4] + "$" + f[5],
		"$argon2id$v=19$m=99999999,t=2,p=1$" + f[4] + "$" + f[5], // > 1 GiB
		"$argon2id$v=19$m=19456,t=2,p=1$!!!$" + f[5],
		"$argon2id$v=19$m=19456,t=2,p=1$" + f[4] + "$short",
		"$argon2id$v=19$m=19456,t=2,p=1$" + f[4],
		"$2a$04$tooshort",
	}
	for _, h := range bad {
		if ok, err := VerifyPassword(h, "x"); err == nil || ok {
			t.Errorf("VerifyPassword(%q) = %v, %v; want error", h, ok, err)
		}
	}
}

func BenchmarkVerifyPassword(b *testing.B) {
	h, _ := HashPassword("bench")
	for b.Loop() {
		VerifyPassword(h, "bench")
	}
}
