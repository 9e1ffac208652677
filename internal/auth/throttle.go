package auth

import (
	"container/list"
	"time"
)

// failureTable counts recent authentication failures per key (an IP prefix
// or a username). It is bounded: entries whose window expired are dropped,
// and when the table is full the least recently touched entry is evicted.
// Not safe for concurrent use; the Authenticator serialises access.
type failureTable struct {
	max    int
	window time.Duration
	m      map[string]*list.Element
	lru    *list.List // front = most recently touched; values are *failureEntry
}

type failureEntry struct {
	key   string
	count int
	first time.Time // start of the current window
	last  time.Time
}

func newFailureTable(max int, window time.Duration) *failureTable {
	return &failureTable{max: max, window: window, m: make(map[string]*list.Element), lru: list.New()}
}

// count returns the failures of key in the current window.
func (t *failureTable) count(key string, now time.Time) int {
	el, ok := t.m[key]
	if !ok {
		return 0
	}
	e := el.Value.(*failureEntry)
	if now.Sub(e.first) >= t.window {
		t.remove(el)
		return 0
	}
	return e.count
}

// entry returns the failures of key in the current window and when that
// window started (zero time when there are none).
func (t *failureTable) entry(key string, now time.Time) (int, time.Time) {
	n := t.count(key, now)
	if n == 0 {
		return 0, time.Time{}
	}
	return n, t.m[key].Value.(*failureEntry).first
}

// add adds delta (may be negative) to key's count and returns the new count.
func (t *failureTable) add(key string, delta int, now time.Time) int {
	el, ok := t.m[key]
	if ok {
		e := el.Value.(*failureEntry)
		if now.Sub(e.first) >= t.window {
			e.count, e.first = 0, now
		}
		e.count += delta
		e.last = now
		if e.count <= 0 {
			t.remove(el)
			return 0
		}
		t.lru.MoveToFront(el)
		return e.count
	}
	if delta <= 0 {
		return 0
	}
	t.evict()
	e := &failureEntry{key: key, count: delta, first: now, last: now}
	t.m[key] = t.lru.PushFront(e)
	return delta
}

func (t *failureTable) reset(key string) {
	if el, ok := t.m[key]; ok {
		t.remove(el)
	}
}

func (t *failureTable) remove(el *list.Element) {
	delete(t.m, el.Value.(*failureEntry).key)
	t.lru.Remove(el)
}

// evict makes room for one new entry by dropping the least recently
// touched entries while the table is full.
func (t *failureTable) evict() {
	for len(t.m) >= t.max {
		t.remove(t.lru.Back())
	}
}

func (t *failureTable) len() int { return len(t.m) }
