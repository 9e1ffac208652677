package auth

import (
	"encoding/binary"
	"hash"
	"math/bits"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/blake2b"
)

// Argon2id (RFC 9106, version 0x13), written here so that its memory can
// be reused. golang.org/x/crypto/argon2 allocates the matrix (19 MiB with
// our parameters) on every call. Once the Go runtime has given such
// memory back to the kernel, touching it again costs a page fault per
// 4 KiB: on the VMs we measure on, 150-200 ms per login instead of
// 30-40 ms (docs/PERFORMANCE.md, session 36), paid by every check that
// misses the success cache after the process has been quiet for a while
// (back to back, checks reuse memory the collector has just freed).
// hashMemory keeps the matrices of recent checks instead,
// mapped outside the Go heap (matrix_unix.go): kept in the heap, they
// raised the collector's heap goal by twice their size, and tern's peak
// RSS under bench/compare.sh by about 80 MiB. The tests check the
// derivation against golang.org/x/crypto/argon2 (random parameters) and
// RFC 9106's test vector.

const (
	argonVersion    = 0x13
	argonTypeID     = 2 // Argon2id
	argonSyncPoints = 4 // slices per pass
	blockWords      = 128
	blockBytes      = blockWords * 8
)

// argonBlock is one 1 KiB block of the matrix as words.
type argonBlock [blockWords]uint64

// load sets b to the block src holds (little-endian words).
func (b *argonBlock) load(src []byte) {
	src = src[:blockBytes]
	for i := range b {
		b[i] = binary.LittleEndian.Uint64(src[i*8:])
	}
}

// store writes b to dst.
func (b *argonBlock) store(dst []byte) {
	dst = dst[:blockBytes]
	for i, w := range b {
		binary.LittleEndian.PutUint64(dst[i*8:], w)
	}
}

// matrix is a derivation's memory: its blocks, one lane after another.
type matrix []byte

// block is block i of m.
func (m matrix) block(i uint32) []byte {
	return m[int(i)*blockBytes : (int(i)+1)*blockBytes]
}

// argon2idParams are the cost and output parameters of one derivation.
type argon2idParams struct {
	t, m, p uint32 // passes, KiB, lanes
	keyLen  uint32
}

// argon2idKey derives params.keyLen bytes from password and salt, with
// the optional secret and associated data (RFC 9106 §3.1: K and X;
// tern's stored hashes use neither). The matrix comes from pool when it
// keeps matrices of this size.
func argon2idKey(pool *memoryPool, password, salt, secret, ad []byte, params argon2idParams) []byte {
	lanes := params.p
	segLen := params.m / (argonSyncPoints * lanes)
	laneLen := segLen * argonSyncPoints
	mem := pool.get(int(laneLen * lanes))
	defer pool.put(mem)

	h0 := initialHash(password, salt, secret, ad, params)
	for l := range lanes {
		// The lane's first two blocks: H'^1024(H_0 || LE32(column) ||
		// LE32(lane)) (RFC 9106 §3.2, steps 3 and 4).
		variableHash(mem.block(l*laneLen), h0[:], le32(0), le32(l))
		variableHash(mem.block(l*laneLen+1), h0[:], le32(1), le32(l))
	}
	f := filler{mem: mem, params: params, segLen: segLen, laneLen: laneLen}
	for pass := range params.t {
		for slice := range uint32(argonSyncPoints) {
			// A segment refers only to finished slices of other lanes,
			// so the lanes of a slice may run one after another.
			for lane := range lanes {
				f.fillSegment(pass, slice, lane)
			}
		}
	}
	final := make([]byte, blockBytes)
	for l := range lanes {
		for i, c := range mem.block(l*laneLen + laneLen - 1) {
			final[i] ^= c
		}
	}
	out := make([]byte, params.keyLen)
	variableHash(out, final)
	return out
}

// initialHash is H_0 (RFC 9106 §3.2, step 1).
func initialHash(password, salt, secret, ad []byte, params argon2idParams) [blake2b.Size]byte {
	h, _ := blake2b.New512(nil) // cannot fail without a key
	for _, v := range []uint32{params.p, params.keyLen, params.m, params.t, argonVersion, argonTypeID} {
		h.Write(le32(v))
	}
	for _, s := range [][]byte{password, salt, secret, ad} {
		h.Write(le32(uint32(len(s))))
		h.Write(s)
	}
	var h0 [blake2b.Size]byte
	h.Sum(h0[:0])
	return h0
}

// variableHash fills out with H'^len(out) of the concatenated inputs
// (RFC 9106 §3.3).
func variableHash(out []byte, in ...[]byte) {
	h := newBlake2b(min(len(out), blake2b.Size))
	h.Write(le32(uint32(len(out))))
	for _, s := range in {
		h.Write(s)
	}
	if len(out) <= blake2b.Size {
		h.Sum(out[:0])
		return
	}
	v := h.Sum(nil)
	copy(out, v[:32])
	out = out[32:]
	for len(out) > blake2b.Size {
		s := blake2b.Sum512(v)
		v = s[:]
		copy(out, v[:32])
		out = out[32:]
	}
	last := newBlake2b(len(out))
	last.Write(v)
	last.Sum(out[:0])
}

// newBlake2b is an unkeyed BLAKE2b of size bytes (1 to 64).
func newBlake2b(size int) hash.Hash {
	h, err := blake2b.New(size, nil)
	if err != nil {
		panic("argon2id: blake2b size " + err.Error()) // sizes are 1..64 by construction
	}
	return h
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// filler computes the segments of one derivation's matrix.
type filler struct {
	mem             matrix
	params          argon2idParams
	segLen, laneLen uint32
}

// fillSegment computes the blocks of lane's segment in slice of pass
// (RFC 9106 §3.2, steps 5 and 6; §3.4 for the reference block).
func (f *filler) fillSegment(pass, slice, lane uint32) {
	// Argon2id takes the data-independent addressing of Argon2i in the
	// first half of the first pass and Argon2d's after it.
	independent := pass == 0 && slice < argonSyncPoints/2
	var addresses, input argonBlock
	if independent {
		input[0], input[1], input[2] = uint64(pass), uint64(lane), uint64(slice)
		input[3], input[4], input[5] = uint64(len(f.mem)/blockBytes), uint64(f.params.t), argonTypeID
	}
	first := uint32(0)
	if pass == 0 && slice == 0 {
		first = 2 // the lane's first two blocks are made from H_0
		if independent {
			nextAddresses(&addresses, &input)
		}
	}
	laneStart := lane * f.laneLen
	// prev is the block before the next one: the lane's last for the
	// first block of a pass after the first.
	var prev, ref, old argonBlock
	if column := slice*f.segLen + first; column == 0 {
		prev.load(f.mem.block(laneStart + f.laneLen - 1))
	} else {
		prev.load(f.mem.block(laneStart + column - 1))
	}
	for index := first; index < f.segLen; index++ {
		var pseudoRand uint64
		if independent {
			if index%blockWords == 0 {
				nextAddresses(&addresses, &input)
			}
			pseudoRand = addresses[index%blockWords]
		} else {
			pseudoRand = prev[0]
		}
		refLane := uint32(pseudoRand>>32) % f.params.p
		if pass == 0 && slice == 0 {
			refLane = lane
		}
		ref.load(f.mem.block(refLane*f.laneLen + f.refColumn(pseudoRand, pass, slice, index, refLane == lane)))
		dst := f.mem.block(laneStart + slice*f.segLen + index)
		if pass == 0 {
			compress(&prev, &prev, &ref, nil)
		} else {
			old.load(dst) // version 0x13 XORs the new block into the old
			compress(&prev, &prev, &ref, &old)
		}
		prev.store(dst)
	}
}

// refColumn maps the low half of pseudoRand onto the blocks a block may
// refer to (RFC 9106 §3.4.2): in its own lane, every block made before
// the previous one, within the last three slices after the first pass;
// in another lane, the finished slices, less the last block when this
// block starts its segment.
func (f *filler) refColumn(pseudoRand uint64, pass, slice, index uint32, sameLane bool) uint32 {
	var area, start uint32
	if pass == 0 {
		area = slice * f.segLen
	} else {
		area = (argonSyncPoints - 1) * f.segLen
		start = (slice + 1) % argonSyncPoints * f.segLen
	}
	switch {
	case sameLane:
		area += index - 1
	case index == 0:
		area--
	}
	x := pseudoRand & 0xffffffff
	x = x * x >> 32
	y := uint64(area) * x >> 32
	return (start + area - 1 - uint32(y)) % f.laneLen
}

// nextAddresses moves input's counter on and makes the next 128
// reference positions of data-independent addressing:
// G(ZERO, G(ZERO, input)) (RFC 9106 §3.4.1.2).
func nextAddresses(addresses, input *argonBlock) {
	var zero argonBlock
	input[6]++
	compress(addresses, &zero, input, nil)
	compress(addresses, &zero, addresses, nil)
}

// compress sets out to G(x, y) (RFC 9106 §3.5), XORed with xorWith
// unless that is nil. out may be x or y.
func compress(out, x, y, xorWith *argonBlock) {
	var r, q argonBlock
	for i := range r {
		r[i] = x[i] ^ y[i]
	}
	q = r
	// P on each row of eight 16-byte registers (16 consecutive words),
	// then on each column (register c of every row: words 2c and 2c+1).
	for row := 0; row < blockWords; row += 16 {
		permute(&q, row, row+1, row+2, row+3, row+4, row+5, row+6, row+7,
			row+8, row+9, row+10, row+11, row+12, row+13, row+14, row+15)
	}
	for c := 0; c < 16; c += 2 {
		permute(&q, c, c+1, c+16, c+17, c+32, c+33, c+48, c+49,
			c+64, c+65, c+80, c+81, c+96, c+97, c+112, c+113)
	}
	if xorWith != nil {
		for i := range out {
			out[i] = q[i] ^ r[i] ^ xorWith[i]
		}
		return
	}
	for i := range out {
		out[i] = q[i] ^ r[i]
	}
}

// permute applies P (RFC 9106 §3.6) to the words of b at i0 ... i15, as
// v_0 ... v_15.
func permute(b *argonBlock, i0, i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11, i12, i13, i14, i15 int) {
	v0, v1, v2, v3, v4, v5, v6, v7 := b[i0], b[i1], b[i2], b[i3], b[i4], b[i5], b[i6], b[i7]
	v8, v9, v10, v11, v12, v13, v14, v15 := b[i8], b[i9], b[i10], b[i11], b[i12], b[i13], b[i14], b[i15]
	v0, v4, v8, v12 = mixWords(v0, v4, v8, v12)
	v1, v5, v9, v13 = mixWords(v1, v5, v9, v13)
	v2, v6, v10, v14 = mixWords(v2, v6, v10, v14)
	v3, v7, v11, v15 = mixWords(v3, v7, v11, v15)
	v0, v5, v10, v15 = mixWords(v0, v5, v10, v15)
	v1, v6, v11, v12 = mixWords(v1, v6, v11, v12)
	v2, v7, v8, v13 = mixWords(v2, v7, v8, v13)
	v3, v4, v9, v14 = mixWords(v3, v4, v9, v14)
	b[i0], b[i1], b[i2], b[i3], b[i4], b[i5], b[i6], b[i7] = v0, v1, v2, v3, v4, v5, v6, v7
	b[i8], b[i9], b[i10], b[i11], b[i12], b[i13], b[i14], b[i15] = v8, v9, v10, v11, v12, v13, v14, v15
}

// mixWords is GB (RFC 9106 §3.6): BLAKE2b's mixing with a multiplication
// of the low halves added in each step.
func mixWords(a, b, c, d uint64) (uint64, uint64, uint64, uint64) {
	a += b + 2*uint64(uint32(a))*uint64(uint32(b))
	d = bits.RotateLeft64(d^a, -32)
	c += d + 2*uint64(uint32(c))*uint64(uint32(d))
	b = bits.RotateLeft64(b^c, -24)
	a += b + 2*uint64(uint32(a))*uint64(uint32(b))
	d = bits.RotateLeft64(d^a, -16)
	c += d + 2*uint64(uint32(c))*uint64(uint32(d))
	b = bits.RotateLeft64(b^c, -63)
	return a, b, c, d
}

// memoryPool keeps up to max matrices of one size (blocks) for reuse,
// mapped outside the Go heap (mapMatrix), so their pages stay resident
// without counting towards the collector's goal, until no derivation has
// used the pool for idle. Other sizes (hashes imported with other
// parameters) are allocated in the heap for the call.
type memoryPool struct {
	blocks int
	max    int
	idle   time.Duration

	mu      sync.Mutex
	free    []matrix
	lastPut time.Time
	timer   *time.Timer // drops free after idle; nil when none is set
}

// hashMemory serves the checks and hashes of tern's own parameters: one
// matrix per hash slot (New raises its bound to the Authenticator's
// slots, one per P), so it holds at most the memory that many checks at
// once would allocate anyway, kept for hashMemoryIdle after the last.
var hashMemory = newMemoryPool(int(argonMemoryKiB/(argonSyncPoints*argonThreads)*argonSyncPoints*argonThreads),
	runtime.GOMAXPROCS(0), hashMemoryIdle)

// hashMemoryIdle is how long hashMemory keeps its matrices after the
// last check: long enough to bridge the gaps between a small server's
// logins.
const hashMemoryIdle = 2 * time.Minute

func newMemoryPool(blocks, max int, idle time.Duration) *memoryPool {
	return &memoryPool{blocks: blocks, max: max, idle: idle}
}

// keepAtLeast raises the number of matrices the pool keeps to n.
func (p *memoryPool) keepAtLeast(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.max = max(p.max, n)
}

// get returns a matrix of n blocks: a kept one, or a newly mapped one
// when the pool keeps that size.
func (p *memoryPool) get(n int) matrix {
	if p == nil || n != p.blocks {
		return make(matrix, n*blockBytes)
	}
	p.mu.Lock()
	if k := len(p.free); k > 0 {
		m := p.free[k-1]
		p.free[k-1] = nil
		p.free = p.free[:k-1]
		p.mu.Unlock()
		return m
	}
	p.mu.Unlock()
	return mapMatrix(n * blockBytes)
}

// put gives back a matrix from get. The pool keeps it when it is of the
// pool's size and the pool is not full; every matrix is dropped once the
// pool has been idle for p.idle.
func (p *memoryPool) put(m matrix) {
	if p == nil || len(m) != p.blocks*blockBytes {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastPut = time.Now()
	if len(p.free) >= p.max {
		unmapMatrix(m)
		return
	}
	p.free = append(p.free, m)
	if p.timer == nil {
		p.timer = time.AfterFunc(p.idle, p.dropIfIdle)
	}
}

// dropIfIdle drops the kept matrices if none was given back for p.idle,
// else looks again when that will be so.
func (p *memoryPool) dropIfIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if left := p.idle - time.Since(p.lastPut); left > 0 {
		p.timer.Reset(left)
		return
	}
	for _, m := range p.free {
		unmapMatrix(m)
	}
	p.free = nil
	p.timer = nil
}
