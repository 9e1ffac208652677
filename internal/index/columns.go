package index

import (
	"github.com/tern-imap/tern/internal/sorted"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

// columns holds one mailbox's messages in a column layout, ascending by
// UID: about 70 bytes a message, no pointers per message.
type columns struct {
	uid    []uint32
	modseq []uint64
	flags  []uint32 // flag-set ids (flagSets)
	size   []int64
	idate  []int64 // INTERNALDATE, Unix seconds
	itz    []int32 // its zone offset, seconds east of UTC
	save   []int64 // SAVEDATE, Unix seconds
	sent   []int64 // Date: header, Unix seconds; noDate if none
	stz    []int32
	email  []uint64 // EMAILID "M" + 16 hex digits, as a number (oddIDs otherwise)
	thread []uint64 // THREADID "T" + 16 hex digits
	// oddIDs holds EMAILIDs/THREADIDs not of the compact form, by UID.
	oddIDs map[uint32][2]string
}

const noDate = math.MinInt64

// bytesPerMessage is what one message costs in columns.
const bytesPerMessage = 4 + 8 + 4 + 8 + 8 + 4 + 8 + 8 + 4 + 8 + 8

func (c *columns) len() int { return len(c.uid) }

func (c *columns) grow(n int) {
	c.uid = growTo(c.uid, n)
	c.modseq = growTo(c.modseq, n)
	c.flags = growTo(c.flags, n)
	c.size = growTo(c.size, n)
	c.idate = growTo(c.idate, n)
	c.itz = growTo(c.itz, n)
	c.save = growTo(c.save, n)
	c.sent = growTo(c.sent, n)
	c.stz = growTo(c.stz, n)
	c.email = growTo(c.email, n)
	c.thread = growTo(c.thread, n)
}

func growTo[T any](s []T, n int) []T {
	if cap(s)-len(s) >= n {
		return s
	}
	out := make([]T, len(s), len(s)+max(n, len(s)/4))
	copy(out, s)
	return out
}

// find returns the row of uid (or where it would be, and false), looking
// from row from on (callers walk ascending UIDs; sorted.Seek).
func (c *columns) find(uid uint32, from int) (int, bool) {
	return sorted.Seek(c.uid, from, uid)
}

// appendRow adds r, whose UID is above every UID in c.
func (c *columns) appendRow(r *store.IndexRow, set uint32) {
	c.uid = append(c.uid, r.UID)
	c.modseq = append(c.modseq, r.ModSeq)
	c.flags = append(c.flags, set)
	c.size = append(c.size, r.Size)
	sec, tz := splitTime(r.InternalDate)
	c.idate = append(c.idate, sec)
	c.itz = append(c.itz, tz)
	c.save = append(c.save, r.SaveDate.Unix())
	sec, tz = noDate, 0
	if !r.SentDate.IsZero() {
		sec, tz = splitTime(r.SentDate)
	}
	c.sent = append(c.sent, sec)
	c.stz = append(c.stz, tz)
	e, eok := compactID(r.EmailID, 'M')
	t, tok := compactID(r.ThreadID, 'T')
	c.email = append(c.email, e)
	c.thread = append(c.thread, t)
	if !eok || !tok {
		if c.oddIDs == nil {
			c.oddIDs = make(map[uint32][2]string)
		}
		c.oddIDs[r.UID] = [2]string{r.EmailID, r.ThreadID}
	}
}

// keep compacts the columns to the rows i for which keep(i) is true.
func (c *columns) keep(keep func(i int) bool) {
	j := 0
	for i := range c.uid {
		if !keep(i) {
			delete(c.oddIDs, c.uid[i])
			continue
		}
		if i != j {
			c.uid[j], c.modseq[j], c.flags[j], c.size[j] = c.uid[i], c.modseq[i], c.flags[i], c.size[i]
			c.idate[j], c.itz[j], c.save[j] = c.idate[i], c.itz[i], c.save[i]
			c.sent[j], c.stz[j], c.email[j], c.thread[j] = c.sent[i], c.stz[i], c.email[i], c.thread[i]
		}
		j++
	}
	c.uid, c.modseq, c.flags, c.size = c.uid[:j], c.modseq[:j], c.flags[:j], c.size[:j]
	c.idate, c.itz, c.save = c.idate[:j], c.itz[:j], c.save[:j]
	c.sent, c.stz, c.email, c.thread = c.sent[:j], c.stz[:j], c.email[:j], c.thread[:j]
}

// fill sets the fields of m that want asks for from row i.
func (c *columns) fill(m *store.Message, i int, want store.Want, sets *flagSets) {
	m.UID, m.ModSeq = c.uid[i], c.modseq[i]
	if want&store.WantFlags != 0 {
		m.Flags = sets.list(c.flags[i])
	}
	if want&store.WantSize != 0 {
		m.Size = c.size[i]
	}
	if want&store.WantDates != 0 {
		m.InternalDate = joinTime(c.idate[i], c.itz[i])
		m.SaveDate = time.Unix(c.save[i], 0).UTC()
		if c.sent[i] != noDate {
			m.SentDate = joinTime(c.sent[i], c.stz[i])
		}
	}
	if want&store.WantIDs != 0 {
		if odd, ok := c.oddIDs[c.uid[i]]; ok {
			m.EmailID, m.ThreadID = odd[0], odd[1]
		} else {
			m.EmailID, m.ThreadID = formatID('M', c.email[i]), formatID('T', c.thread[i])
		}
	}
}

// compactID parses prefix + 16 lower-case hex digits (what the sqlite
// backend assigns) into a number; ok is false for any other form.
func compactID(id string, prefix byte) (uint64, bool) {
	if len(id) != 17 || id[0] != prefix {
		return 0, false
	}
	v, err := strconv.ParseUint(id[1:], 16, 64)
	if err != nil || formatID(prefix, v) != id {
		return 0, false
	}
	return v, true
}

func formatID(prefix byte, v uint64) string {
	var b [17]byte
	b[0] = prefix
	const digits = "0123456789abcdef"
	for i := 16; i > 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

func splitTime(t time.Time) (int64, int32) {
	_, off := t.Zone()
	return t.Unix(), int32(off)
}

// zones caches the fixed zones of offsets seen, so building a time does
// not allocate a new Location each time.
var zones sync.Map // int32 -> *time.Location

func joinTime(sec int64, tz int32) time.Time {
	if tz == 0 {
		return time.Unix(sec, 0).UTC()
	}
	loc, ok := zones.Load(tz)
	if !ok {
		loc, _ = zones.LoadOrStore(tz, time.FixedZone("", int(tz)))
	}
	return time.Unix(sec, 0).In(loc.(*time.Location))
}

// flagSets interns the distinct flag lists of a mailbox: each message
// keeps a small id instead of a slice of strings.
type flagSets struct {
	lists [][]string // id -> flags, shared with callers: never modified
	bits  []uint8    // id -> seenBit|deletedBit
	ids   map[string]uint32
}

const (
	seenBit uint8 = 1 << iota
	deletedBit
)

func (s *flagSets) id(flags []string) uint32 {
	k := strings.Join(flags, " ")
	if id, ok := s.ids[k]; ok {
		return id
	}
	if s.ids == nil {
		s.ids = make(map[string]uint32)
	}
	var b uint8
	for _, f := range flags {
		switch f {
		case `\Seen`:
			b |= seenBit
		case `\Deleted`:
			b |= deletedBit
		}
	}
	id := uint32(len(s.lists))
	s.lists = append(s.lists, flags)
	s.bits = append(s.bits, b)
	s.ids[k] = id
	return id
}

func (s *flagSets) list(id uint32) []string { return s.lists[id] }
func (s *flagSets) bit(id uint32) uint8     { return s.bits[id] }
