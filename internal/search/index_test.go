package search

import (
	"slices"
	"testing"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/store"
)

// TestRestrict: the messages fetched for a search are narrowed by every
// text key all matches must satisfy, through AND, OR (all branches) and
// FUZZY (its text keys' hits are its fuzzy matches), never through NOT;
// queued messages stay in.
func TestRestrict(t *testing.T) {
	from := &imap.SearchKey{Op: imap.SearchFrom, Str: "ottoline"}
	body := &imap.SearchKey{Op: imap.SearchBody, Str: "halfmoon"}
	seen := &imap.SearchKey{Op: imap.SearchSeen}
	fuzzy := func(k *imap.SearchKey) *imap.SearchKey {
		return &imap.SearchKey{Op: imap.SearchFuzzy, Children: []*imap.SearchKey{k}}
	}
	and := func(ks ...*imap.SearchKey) *imap.SearchKey { return &imap.SearchKey{Op: imap.SearchAnd, Children: ks} }
	or := func(a, b *imap.SearchKey) *imap.SearchKey {
		return &imap.SearchKey{Op: imap.SearchOr, Children: []*imap.SearchKey{a, b}}
	}
	not := func(k *imap.SearchKey) *imap.SearchKey {
		return &imap.SearchKey{Op: imap.SearchNot, Children: []*imap.SearchKey{k}}
	}
	all := []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct {
		name string
		key  *imap.SearchKey
		want []uint32
	}{
		{"FROM", from, []uint32{2, 9, 10}},
		{"FUZZY FROM", fuzzy(from), []uint32{2, 9, 10}},
		{"FUZZY (FROM SEEN)", fuzzy(and(from, seen)), []uint32{2, 9, 10}},
		{"SEEN FUZZY BODY", and(seen, fuzzy(body)), []uint32{4, 5, 9, 10}},
		{"OR FUZZY FROM BODY", or(fuzzy(from), body), []uint32{2, 4, 5, 9, 10}},
		{"OR FUZZY FROM SEEN", or(fuzzy(from), seen), all},
		{"NOT FUZZY FROM", not(fuzzy(from)), all},
	} {
		leaves := TextLeaves(c.key)
		res := store.TextResult{Pending: []uint32{9, 10}}
		for _, l := range leaves {
			switch l {
			case from:
				res.Hits = append(res.Hits, []uint32{2})
			case body:
				res.Hits = append(res.Hits, []uint32{4, 5})
			}
		}
		if got := NewTextIndex(leaves, TextQueries(c.key, leaves), res).Restrict(c.key, all); !slices.Equal(got, c.want) {
			t.Errorf("%s: Restrict = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestTextIndexDecideOrder: decide walks each key's hits from where it
// last stopped, and still answers UIDs asked out of order, or twice.
func TestTextIndexDecideOrder(t *testing.T) {
	k := &imap.SearchKey{Op: imap.SearchBody, Str: "x"}
	x := NewTextIndex([]*imap.SearchKey{k}, nil, store.TextResult{Hits: [][]uint32{{2, 4, 6, 9}}})
	for _, c := range []struct {
		uid  uint32
		want bool
	}{{1, false}, {2, true}, {4, true}, {5, false}, {9, true}, {2, true}, {2, true}, {3, false}, {6, true}, {10, false}, {9, true}} {
		got, _, decided := x.decide(k, c.uid)
		if !decided || got != c.want {
			t.Fatalf("decide(%d) = %v (decided %v), want %v", c.uid, got, decided, c.want)
		}
	}
}

// TestDecided: BODY and TEXT keys, and FROM..BCC keys the store decides
// field by field, joined by AND, OR and NOT, are answered from their hits
// alone, except the messages not indexed yet, which are to be read (also
// under NOT); so is SUBJECT; a key holding anything else (HEADER, a key
// whose needle has a line break, FUZZY, flags) is not decided.
func TestDecided(t *testing.T) {
	body := &imap.SearchKey{Op: imap.SearchBody, Str: "halfmoon"}
	text := &imap.SearchKey{Op: imap.SearchText, Str: "zephyrine"}
	from := &imap.SearchKey{Op: imap.SearchFrom, Str: "ottoline"}
	toBroken := &imap.SearchKey{Op: imap.SearchTo, Str: "otto\nline"}
	subject := &imap.SearchKey{Op: imap.SearchSubject, Str: "ottoline"}
	header := &imap.SearchKey{Op: imap.SearchHeader, Field: "X-Tag", Str: "ottoline"}
	seen := &imap.SearchKey{Op: imap.SearchSeen}
	and := func(ks ...*imap.SearchKey) *imap.SearchKey { return &imap.SearchKey{Op: imap.SearchAnd, Children: ks} }
	or := func(a, b *imap.SearchKey) *imap.SearchKey {
		return &imap.SearchKey{Op: imap.SearchOr, Children: []*imap.SearchKey{a, b}}
	}
	not := func(k *imap.SearchKey) *imap.SearchKey {
		return &imap.SearchKey{Op: imap.SearchNot, Children: []*imap.SearchKey{k}}
	}
	fuzzy := &imap.SearchKey{Op: imap.SearchFuzzy, Children: []*imap.SearchKey{body}}
	fuzzyFrom := &imap.SearchKey{Op: imap.SearchFuzzy, Children: []*imap.SearchKey{from}}
	all := []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct {
		name        string
		key         *imap.SearchKey
		match, read []uint32
		ok          bool
	}{
		{"BODY", body, []uint32{2, 4, 6}, []uint32{9, 10}, true},
		{"TEXT", and(text), []uint32{4, 5}, []uint32{9, 10}, true},
		{"BODY TEXT", and(body, text), []uint32{4}, []uint32{9, 10}, true},
		{"BODY FROM", and(body, from), []uint32{2}, []uint32{9, 10}, true},
		{"FROM", from, []uint32{2}, []uint32{9, 10}, true},
		{"TO with a line break", toBroken, nil, nil, false},
		{"BODY SUBJECT", and(body, subject), []uint32{2}, []uint32{9, 10}, true},
		{"HEADER", and(body, header), nil, nil, false},
		{"FUZZY FROM", fuzzyFrom, nil, nil, false},
		{"BODY SEEN", and(body, seen), nil, nil, false},
		{"OR BODY TEXT", or(body, text), []uint32{2, 4, 5, 6}, []uint32{9, 10}, true},
		{"OR FROM BODY", or(from, body), []uint32{2, 4, 6}, []uint32{9, 10}, true},
		{"NOT BODY", not(body), []uint32{1, 3, 5, 7, 8}, []uint32{9, 10}, true},
		{"FROM NOT TEXT", and(from, not(text)), []uint32{2}, []uint32{9, 10}, true},
		{"OR BODY SUBJECT", or(body, subject), []uint32{2, 4, 6}, []uint32{9, 10}, true},
		{"NOT SEEN", not(seen), nil, nil, false},
		{"FUZZY BODY", fuzzy, nil, nil, false},
		{"empty AND", and(), nil, nil, false},
	} {
		leaves := TextLeaves(c.key)
		res := store.TextResult{Pending: []uint32{9, 10}}
		for _, l := range leaves {
			switch l {
			case body:
				res.Hits = append(res.Hits, []uint32{2, 4, 6})
			case text:
				res.Hits = append(res.Hits, []uint32{4, 5})
			case from, toBroken, subject, header:
				res.Hits = append(res.Hits, []uint32{2})
			}
		}
		in := slices.Clone(all)
		x := NewTextIndex(leaves, TextQueries(c.key, leaves), res)
		match, read, ok := x.Decided(c.key, in)
		if ok != c.ok || !slices.Equal(match, c.match) || !slices.Equal(read, c.read) {
			t.Errorf("%s: Decided = %v, %v, %v; want %v, %v, %v", c.name, match, read, ok, c.match, c.read, c.ok)
		}
		if !slices.Equal(in, all) {
			t.Errorf("%s: Decided changed its input to %v", c.name, in)
		}
	}
}
