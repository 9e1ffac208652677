package index

// ThreadCacheBytes is the size of every mailbox's thread cache (tests).
func ThreadCacheBytes(x *Indexes) int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	var n int64
	for _, b := range x.boxes {
		b.mu.RLock()
		n += b.thread.size()
		b.mu.RUnlock()
	}
	return n
}
