package sort

import (
	"cmp"
	"hash/maphash"
	"slices"
	"strconv"

	"github.com/tern-imap/tern/internal/store"
)

// Thread is a node of a THREAD result. Index is the message's index in
// the items given, or -1 for a dummy node (a message not among them).
type Thread struct {
	Index    int
	Children []*Thread
}

// threadInfo is what both algorithms need per message.
type threadInfo struct {
	date    dateKey
	subject string // base subject, i;ascii-casemap
	reply   bool
}

// dateKey is a time as two numbers, compared faster than a time.Time.
type dateKey struct {
	sec  int64
	nsec int32
}

func (d dateKey) compare(e dateKey) int {
	if r := cmp.Compare(d.sec, e.sec); r != 0 {
		return r
	}
	return cmp.Compare(d.nsec, e.nsec)
}

func threadInfos(items []Item) []threadInfo {
	infos := make([]threadInfo, len(items))
	for i := range items {
		s := items[i].subject()
		t := items[i].sentOrInternal()
		infos[i] = threadInfo{date: dateKey{t.Unix(), int32(t.Nanosecond())}, subject: s.Key, reply: s.Reply}
	}
	return infos
}

// OrderedSubject threads items with the ORDEREDSUBJECT algorithm (RFC
// 5256 §3 "ORDEREDSUBJECT"): messages are sorted by base subject, then
// sent date; each run of equal base subjects is one thread whose first
// message is the parent of the others; threads are ordered by the sent
// date of their first message.
func OrderedSubject(items []Item) []*Thread {
	infos := threadInfos(items)
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	byDate := func(a, b int) int {
		if r := infos[a].date.compare(infos[b].date); r != 0 {
			return r
		}
		return cmp.Compare(a, b)
	}
	slices.SortFunc(idx, func(a, b int) int {
		if r := cmp.Compare(infos[a].subject, infos[b].subject); r != 0 {
			return r
		}
		return byDate(a, b)
	})
	var roots []*Thread
	for i := 0; i < len(idx); {
		root := &Thread{Index: idx[i]}
		j := i + 1
		for ; j < len(idx) && infos[idx[j]].subject == infos[idx[i]].subject; j++ {
			root.Children = append(root.Children, &Thread{Index: idx[j]})
		}
		roots = append(roots, root)
		i = j
	}
	// byDate is a total order (ties go by index), so no stable sort is
	// needed (Go's is O(n log² n): a second of a million messages).
	slices.SortFunc(roots, func(a, b *Thread) int { return byDate(a.Index, b.Index) })
	return roots
}

// container is a node of the REFERENCES algorithm's id table.
type container struct {
	index    int // -1: dummy
	parent   *container
	children []*container
}

func (c *container) unlink() {
	if p := c.parent; p != nil {
		p.children = slices.DeleteFunc(p.children, func(x *container) bool { return x == c })
		c.parent = nil
	}
}

// isAncestorOf reports whether c is d or one of d's ancestors.
func (c *container) isAncestorOf(d *container) bool {
	for ; d != nil; d = d.parent {
		if d == c {
			return true
		}
	}
	return false
}

// link makes child a child of parent unless that would make a loop. A
// child without children of its own can only be its own ancestor, which
// spares walking up from parent in the usual case (a new message below
// the thread so far), and keeps long reply chains linear.
func link(parent, child *container) {
	if child == parent || (len(child.children) > 0 && child.isAncestorOf(parent)) {
		return
	}
	child.unlink()
	child.parent = parent
	parent.children = append(parent.children, child)
}

// References threads items with the REFERENCES algorithm of RFC 5256 §3.
// Message ids are compared by their 64-bit hashes (HashID): two distinct
// ids of one mailbox share a hash with a probability of about n²/2⁶⁵ for
// n ids (under 10⁻⁶ at four million), and the hash is keyed afresh in
// every process, so no one can make ids collide on purpose.
func References(items []Item) []*Thread {
	infos := threadInfos(items)
	// Sized for every message plus about one referenced id each, and
	// containers allocated in blocks: at 100,000 messages the map's
	// growth and one allocation per container were a third of THREAD.
	table := make(map[uint64]*container, 2*len(items))
	all := make([]*container, 0, 2*len(items)) // every container, in creation order
	var block []container
	alloc := func() *container {
		if len(block) == 0 {
			block = make([]container, 1024)
		}
		c := &block[0]
		block = block[1:]
		c.index = -1
		all = append(all, c)
		return c
	}
	getNew := func(id uint64) *container {
		c := table[id]
		if c == nil {
			c = alloc()
			table[id] = c
		}
		return c
	}
	var scratch []uint64 // the chain of an item without Keys
	for i := range items {
		it := &items[i]
		keys := it.threadKeys(scratch[:0])
		if !it.Keys.Known {
			scratch = keys.Refs
		}
		// A message without a Message-ID, or whose Message-ID another
		// message already has, gets a container of its own that no
		// reference can name.
		var msg *container
		if c := table[keys.ID]; keys.ID == 0 || (c != nil && c.index >= 0) {
			msg = alloc()
		} else {
			msg = getNew(keys.ID)
		}
		msg.index = i
		// (1A) Link the references in order, parent before child, where
		// the child has no parent yet and no loop results.
		var prev *container
		for _, r := range keys.Refs {
			c := getNew(r)
			if prev != nil && c.parent == nil && c != prev {
				link(prev, c)
			}
			prev = c
		}
		// (1B) The last reference is this message's parent: this
		// message's own References win over links others implied.
		msg.unlink()
		if prev != nil && prev != msg {
			link(prev, msg)
		}
	}
	// (2) The root set.
	var roots []*container
	for _, c := range all {
		if c.parent == nil {
			roots = append(roots, c)
		}
	}
	// (3) Prune dummies.
	roots = prune(roots, true)
	// (4) Sort the root set by date (a dummy by its first child).
	var sortLevel func([]*container, bool)
	key := func(c *container) int {
		for c.index < 0 && len(c.children) > 0 {
			c = c.children[0]
		}
		return c.index
	}
	less := func(a, b *container) int {
		ka, kb := key(a), key(b)
		if ka < 0 || kb < 0 {
			return cmp.Compare(ka, kb)
		}
		if r := infos[ka].date.compare(infos[kb].date); r != 0 {
			return r
		}
		return cmp.Compare(ka, kb)
	}
	sortLevel = func(list []*container, deep bool) {
		for _, c := range list {
			if deep || c.index < 0 {
				sortLevel(c.children, deep)
			}
		}
		slices.SortStableFunc(list, less)
	}
	sortLevel(roots, false)
	// (5) Gather threads with the same base subject, compared by their
	// hashes as message ids are (HashID): the subjects themselves lie
	// scattered over the heap, and looking each up by its text cost half
	// of THREAD at 100,000 messages.
	subj := func(c *container) (threadInfo, uint64, bool) {
		k := key(c)
		if k < 0 || infos[k].subject == "" {
			return threadInfo{}, 0, false
		}
		return infos[k], HashID(infos[k].subject), true
	}
	subjects := make(map[uint64]*container, len(roots))
	rootSubjects := make([]uint64, len(roots)) // 0: none
	for i, c := range roots {
		in, h, ok := subj(c)
		if !ok {
			continue
		}
		rootSubjects[i] = h
		old := subjects[h]
		if old == nil {
			subjects[h] = c
			continue
		}
		if old.index >= 0 && (c.index < 0 || infos[old.index].reply && !in.reply) {
			subjects[h] = c
		}
	}
	removed := make(map[*container]bool)
	at := make(map[*container]int, len(roots)) // each root's place in roots
	for i, c := range roots {
		at[c] = i
	}
	for i, c := range roots {
		h := rootSubjects[i]
		if h == 0 {
			continue
		}
		in := infos[key(c)]
		t := subjects[h]
		if t == c || t == nil {
			continue
		}
		switch {
		case t.index < 0 && c.index < 0:
			for _, ch := range c.children {
				ch.parent = t
			}
			t.children = append(t.children, c.children...)
			c.children = nil
			removed[c] = true
		case t.index < 0:
			c.parent = t
			t.children = append(t.children, c)
			removed[c] = true
		case c.index >= 0 && in.reply && !infos[t.index].reply:
			c.parent = t
			t.children = append(t.children, c)
			removed[c] = true
		default:
			d := &container{index: -1, children: []*container{t, c}}
			t.parent, c.parent = d, d
			if j, ok := at[t]; ok { // d takes t's place (a search of roots here was quadratic)
				roots[j], at[d] = d, j
			}
			removed[c] = true
			subjects[h] = d
		}
	}
	roots = slices.DeleteFunc(roots, func(c *container) bool { return removed[c] })
	// (6) Sort every set of siblings, children before parents.
	sortLevel(roots, true)
	return toThreads(roots)
}

// prune removes dummy containers (RFC 5256 REFERENCES step 3): an empty
// dummy goes; a dummy with children is replaced by them, except at the
// root level when it has more than one child.
func prune(list []*container, root bool) []*container {
	var out []*container
	for _, c := range list {
		c.children = prune(c.children, false)
		if c.index >= 0 {
			out = append(out, c)
			continue
		}
		switch {
		case len(c.children) == 0:
		case !root || len(c.children) == 1:
			for _, ch := range c.children {
				ch.parent = c.parent
			}
			out = append(out, c.children...)
		default:
			out = append(out, c)
		}
	}
	return out
}

func toThreads(list []*container) []*Thread {
	if len(list) == 0 {
		return nil
	}
	out := make([]*Thread, len(list))
	for i, c := range list {
		out[i] = &Thread{Index: c.index, Children: toThreads(c.children)}
	}
	return out
}

// AppendThreads appends threads in the THREAD response syntax (RFC 5256
// §4): each thread in parentheses, a single child continuing its parent's
// list, several children each in their own parentheses. num maps an item
// index to the number sent (sequence number or UID).
func AppendThreads(b []byte, threads []*Thread, num func(int) uint32) []byte {
	for _, t := range threads {
		b = append(b, '(')
		b = appendThread(b, t, num)
		b = append(b, ')')
	}
	return b
}

func appendThread(b []byte, t *Thread, num func(int) uint32) []byte {
	for {
		wrote := false
		if t.Index >= 0 {
			b = strconv.AppendUint(b, uint64(num(t.Index)), 10)
			wrote = true
		}
		switch len(t.Children) {
		case 0:
			return b
		case 1:
			if wrote {
				b = append(b, ' ')
			}
			t = t.Children[0]
			continue
		}
		if wrote {
			b = append(b, ' ')
		}
		return AppendThreads(b, t.Children, num)
	}
}

// idSeed keys HashID for the life of the process.
var idSeed = maphash.MakeSeed()

// HashID is the key THREAD=REFERENCES compares a message id by: a 64-bit
// hash, never 0 (0 stands for no id).
func HashID(id string) uint64 {
	if h := maphash.String(idSeed, id); h != 0 {
		return h
	}
	return 1
}

// ThreadKeysOf returns the threading ids of a message as REFERENCES uses
// them, hashed: its own Message-ID (0 for none) and its parent chain,
// which is its References or else the first id of its In-Reply-To (RFC
// 5256 §3 REFERENCES step 1A). The chain is appended to refs.
func ThreadKeysOf(messageID string, inReplyTo, references []string, refs []uint64) store.ThreadKeys {
	k := store.ThreadKeys{Known: true, Refs: refs}
	if messageID != "" {
		k.ID = HashID(messageID)
	}
	chain := references
	if len(chain) == 0 && len(inReplyTo) > 0 {
		chain = inReplyTo[:1]
	}
	for _, r := range chain {
		k.Refs = append(k.Refs, HashID(r))
	}
	return k
}

// threadKeys is the item's Keys, or computed from its ids (appending the
// chain to refs) when the caller gave none.
func (it *Item) threadKeys(refs []uint64) store.ThreadKeys {
	if it.Keys.Known {
		return it.Keys
	}
	return ThreadKeysOf(it.MessageID, it.InReplyTo, it.References, refs)
}
