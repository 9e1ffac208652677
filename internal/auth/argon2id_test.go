package auth

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

// TestArgon2idMatchesXCrypto checks our Argon2id against
// golang.org/x/crypto/argon2 for random parameters (lanes, memory not a
// multiple of the lanes' slices, passes, output lengths around the
// 64-byte step of H'), reusing matrices of a pool between derivations so
// that leftovers of an earlier one cannot leak into the next.
func TestArgon2idMatchesXCrypto(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 150 {
		p := uint32(1 + r.IntN(4))
		params := argon2idParams{
			p:      p,
			m:      8*p + uint32(r.IntN(300)),
			t:      uint32(1 + r.IntN(3)),
			keyLen: uint32(4 + r.IntN(140)),
		}
		pool := newMemoryPool(int(params.m/(4*p)*4*p), 1, time.Minute)
		for range 2 { // the second derivation runs on the first's matrix
			password := randBytes(r, r.IntN(40))
			salt := randBytes(r, 8+r.IntN(24))
			got := argon2idKey(pool, password, salt, nil, nil, params)
			want := argon2.IDKey(password, salt, params.t, params.m, uint8(params.p), params.keyLen)
			if !bytes.Equal(got, want) {
				t.Fatalf("case %d %+v: got %x, want %x", i, params, got, want)
			}
		}
	}
}

// TestArgon2idDefaultParameters checks the derivation of tern's own
// parameters, twice on hashMemory's kept matrix.
func TestArgon2idDefaultParameters(t *testing.T) {
	for _, pw := range []string{"first password", "second"} {
		salt := []byte("0123456789abcdef")
		got := argon2idKey(hashMemory, []byte(pw), salt, nil, nil,
			argon2idParams{t: argonTime, m: argonMemoryKiB, p: argonThreads, keyLen: argonKeyLen})
		want := argon2.IDKey([]byte(pw), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
		if !bytes.Equal(got, want) {
			t.Fatalf("%q: got %x, want %x", pw, got, want)
		}
	}
	if hashMemory.kept() == 0 {
		t.Fatal("hashMemory kept no matrix after a derivation")
	}
}

// TestHashMemoryKeepsOnePerSlot checks that when as many checks as the
// Authenticator has hash slots hold a matrix at once, hashMemory keeps
// each one afterwards, also when GOMAXPROCS was raised after the package
// started (tern serve raises it on one-CPU hosts).
func TestHashMemoryKeepsOnePerSlot(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1))
	a, err := New(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	slots := cap(a.hashes)
	held := make([]matrix, slots)
	for i := range held {
		held[i] = hashMemory.get(hashMemory.blocks)
	}
	for _, m := range held {
		hashMemory.put(m)
	}
	if n := hashMemory.kept(); n < slots {
		t.Fatalf("%d hash slots but hashMemory keeps %d matrices", slots, n)
	}
}

// TestArgon2idRFC9106Vector is RFC 9106 §5.3's test vector (with the
// secret and associated data x/crypto's API does not take).
func TestArgon2idRFC9106Vector(t *testing.T) {
	got := argon2idKey(nil, bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16),
		bytes.Repeat([]byte{3}, 8), bytes.Repeat([]byte{4}, 12), argon2idParams{t: 3, m: 32, p: 4, keyLen: 32})
	want := "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
	if hex.EncodeToString(got) != want {
		t.Fatalf("tag %x, want %s", got, want)
	}
}

// TestMemoryPool checks that a matrix given back is handed out again,
// that other sizes and matrices beyond the pool's bound are not kept,
// and that the pool lets its matrices go once idle.
func TestMemoryPool(t *testing.T) {
	pool := newMemoryPool(16, 2, 500*time.Millisecond)
	a, b, c := pool.get(16), pool.get(16), pool.get(16)
	pool.put(a)
	pool.put(b)
	pool.put(c)
	pool.put(make(matrix, 8*blockBytes))
	if n := pool.kept(); n != 2 {
		t.Fatalf("kept %d matrices, want 2", n)
	}
	if got := pool.get(16); &got[0] != &b[0] {
		t.Fatal("a kept matrix was not handed out again")
	}
	if got := pool.get(8); len(got) != 8*blockBytes {
		t.Fatalf("got %d bytes, want 8 blocks", len(got))
	}
	deadline := time.Now().Add(5 * time.Second)
	for pool.kept() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle pool still keeps its matrices")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Kept again after being emptied.
	pool.put(pool.get(16))
	if n := pool.kept(); n != 1 {
		t.Fatalf("kept %d matrices after the drop, want 1", n)
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// BenchmarkArgon2id is one check with tern's parameters, by
// golang.org/x/crypto/argon2 (a fresh matrix each time) and by ours
// (hashMemory's kept one): "warm" one after another, "cold" after the Go
// runtime gave its free memory back to the kernel (debug.FreeOSMemory, as
// its scavenger does in the background between logins).
//
//	go test -run '^$' -bench Argon2id -benchtime 20x ./internal/auth/
func BenchmarkArgon2id(b *testing.B) {
	password, salt := []byte("password"), []byte("0123456789abcdef")
	impls := []struct {
		name   string
		derive func()
	}{
		{"x-crypto", func() { argon2.IDKey(password, salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen) }},
		{"kept-matrix", func() {
			argon2idKey(hashMemory, password, salt, nil, nil,
				argon2idParams{t: argonTime, m: argonMemoryKiB, p: argonThreads, keyLen: argonKeyLen})
		}},
	}
	for _, cold := range []bool{false, true} {
		for _, impl := range impls {
			name := "warm/" + impl.name
			if cold {
				name = "cold/" + impl.name
			}
			b.Run(name, func(b *testing.B) {
				impl.derive() // the pool's matrix exists from here on
				for b.Loop() {
					if cold {
						b.StopTimer()
						debug.FreeOSMemory()
						b.StartTimer()
					}
					impl.derive()
				}
			})
		}
	}
}

// kept is how many matrices the pool holds now.
func (p *memoryPool) kept() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}
