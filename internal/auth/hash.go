// Package auth hashes and verifies passwords and implements the server's
// Authenticator with per-IP and per-user failure throttling.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Argon2id parameters for new hashes. They follow the OWASP password storage
// recommendation (m=19 MiB, t=2, p=1): one verification takes roughly
// 20-40 ms on one modern core, so a login stays well below 100 ms on a
// 2-core machine while keeping GPU attacks expensive.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonSaltLen   = 16
	argonKeyLen    = 32
)

// Bounds on parameters accepted from stored hashes, so that a corrupt or
// hostile hash cannot make a single verification use unbounded CPU/memory.
const (
	maxArgonMemoryKiB = 1024 * 1024 // 1 GiB
	maxArgonTime      = 64
	maxArgonThreads   = 64
	maxArgonKeyLen    = 256
)

// ErrUnknownHashFormat is returned for stored hashes that are neither
// argon2id PHC strings nor bcrypt hashes.
var ErrUnknownHashFormat = errors.New("unknown password hash format")

var b64 = base64.RawStdEncoding

// HashPassword returns an argon2id hash of password in PHC string format:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> (unpadded standard base64).
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: read salt: %w", err)
	}
	return encodeArgon2id(password, salt, argonMemoryKiB, argonTime, argonThreads, argonKeyLen), nil
}

func encodeArgon2id(password string, salt []byte, m, t uint32, p uint8, keyLen uint32) string {
	key := argon2idKey(hashMemory, []byte(password), salt, nil, nil, argon2idParams{t: t, m: m, p: uint32(p), keyLen: keyLen})
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argonVersion, m, t, p, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// VerifyPassword reports whether password matches hash. hash may be an
// argon2id PHC string or a bcrypt hash ($2a$, $2b$, $2y$) of imported
// users. A malformed hash is an error; a mismatch is (false, nil). The
// comparison is constant-time.
func VerifyPassword(hash, password string) (bool, error) {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		return verifyArgon2id(hash, password)
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, nil
		default:
			return false, fmt.Errorf("verify bcrypt hash: %w", err)
		}
	default:
		return false, ErrUnknownHashFormat
	}
}

type argonParams struct {
	m, t uint32
	p    uint8
	salt []byte
	key  []byte
}

func parseArgon2id(hash string) (argonParams, error) {
	var ap argonParams
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	f := strings.Split(hash, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" {
		return ap, fmt.Errorf("argon2id hash: want 5 $-separated fields")
	}
	if f[2] != "v="+strconv.Itoa(argonVersion) {
		return ap, fmt.Errorf("argon2id hash: unsupported version %q", f[2])
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(f[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return ap, fmt.Errorf("argon2id hash: bad parameter %q", kv)
		}
		seen[k] = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return ap, fmt.Errorf("argon2id hash: parameter %q: %w", kv, err)
		}
		switch k {
		case "m":
			ap.m = uint32(n)
		case "t":
			ap.t = uint32(n)
		case "p":
			if n > maxArgonThreads {
				return ap, fmt.Errorf("argon2id hash: p=%d too large", n)
			}
			ap.p = uint8(n)
		default:
			return ap, fmt.Errorf("argon2id hash: unknown parameter %q", k)
		}
	}
	if !seen["m"] || !seen["t"] || !seen["p"] {
		return ap, fmt.Errorf("argon2id hash: missing m, t or p")
	}
	if ap.t < 1 || ap.t > maxArgonTime || ap.p < 1 || ap.m < 8*uint32(ap.p) || ap.m > maxArgonMemoryKiB {
		return ap, fmt.Errorf("argon2id hash: parameters m=%d t=%d p=%d out of range", ap.m, ap.t, ap.p)
	}
	var err error
	if ap.salt, err = b64.DecodeString(f[4]); err != nil || len(ap.salt) < 8 {
		return ap, fmt.Errorf("argon2id hash: bad salt")
	}
	if ap.key, err = b64.DecodeString(f[5]); err != nil || len(ap.key) < 16 || len(ap.key) > maxArgonKeyLen {
		return ap, fmt.Errorf("argon2id hash: bad key")
	}
	return ap, nil
}

func verifyArgon2id(hash, password string) (bool, error) {
	ap, err := parseArgon2id(hash)
	if err != nil {
		return false, err
	}
	key := argon2idKey(hashMemory, []byte(password), ap.salt, nil, nil, argon2idParams{t: ap.t, m: ap.m, p: uint32(ap.p), keyLen: uint32(len(ap.key))})
	return subtle.ConstantTimeCompare(key, ap.key) == 1, nil
}

// NeedsRehash reports whether hash was made with other parameters than
// HashPassword uses now (or another algorithm), so a caller may store a
// fresh hash after a successful login.
func NeedsRehash(hash string) bool {
	ap, err := parseArgon2id(hash)
	if err != nil {
		return true
	}
	return ap.m != argonMemoryKiB || ap.t != argonTime || ap.p != argonThreads ||
		len(ap.salt) != argonSaltLen || len(ap.key) != argonKeyLen
}
