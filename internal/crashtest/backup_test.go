package crashtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ackedAppend is one APPEND that got its tagged OK.
type ackedAppend struct {
	uid        uint32
	flags      []string
	body       []byte
	start, end time.Time
}

// appendRecorder collects acknowledged APPENDs from several clients.
type appendRecorder struct {
	mu   sync.Mutex
	acks []ackedAppend
	errs []error
}

func (r *appendRecorder) add(a ackedAppend) {
	r.mu.Lock()
	r.acks = append(r.acks, a)
	r.mu.Unlock()
}

func (r *appendRecorder) fail(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func (r *appendRecorder) snapshot() []ackedAppend {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.acks)
}

// appendLoop appends to INBOX over its own connection until stop closes.
func (r *appendRecorder) appendLoop(addr string, worker int, stop <-chan struct{}) {
	c, err := dial(addr)
	if err != nil {
		r.fail(err)
		return
	}
	defer c.close()
	if err := c.login("alice", "secret"); err != nil {
		r.fail(err)
		return
	}
	flagSets := [][]string{nil, {`\Seen`}, {`\Flagged`, `$Label1`}}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		body := fmt.Appendf(nil, "From: w%d@example.org\r\nSubject: backup load %d/%d\r\n\r\n%s", worker, worker, i,
			strings.Repeat(fmt.Sprintf("worker %d message %d\r\n", worker, i), 1+i%50))
		flags := flagSets[i%len(flagSets)]
		start := time.Now()
		st, err := c.appendMsg("INBOX", strings.Join(flags, " "), body, i%2 == 0)
		if err != nil {
			r.fail(err)
			return
		}
		m := appendUIDRe.FindStringSubmatch(st)
		if m == nil {
			r.fail(fmt.Errorf("APPEND: %s", st))
			return
		}
		uid, _ := strconv.ParseUint(m[2], 10, 32)
		r.add(ackedAppend{uid: uint32(uid), flags: flags, body: body, start: start, end: time.Now()})
	}
}

// mailboxState is INBOX as FETCH shows it.
type mailboxState struct {
	uidValidity uint32
	msgs        map[uint32]fetchedModSeq
}

type fetchedModSeq struct {
	fetched
	modseq uint64
}

var fetchModSeqRe = regexp.MustCompile(`MODSEQ \((\d+)\)`)

// readInbox fetches every message of alice's INBOX with flags, modseq and
// bytes.
func readInbox(t *testing.T, addr string) mailboxState {
	t.Helper()
	c, err := dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := c.login("alice", "secret"); err != nil {
		t.Fatal(err)
	}
	us, _, err := c.ok("SELECT INBOX (CONDSTORE)")
	if err != nil {
		t.Fatal(err)
	}
	var st mailboxState
	for _, u := range us {
		if m := uidValRe.FindStringSubmatch(u.Text); m != nil {
			v, _ := strconv.ParseUint(m[1], 10, 32)
			st.uidValidity = uint32(v)
		}
	}
	us, _, err = c.ok("UID FETCH 1:* (UID FLAGS MODSEQ BODY.PEEK[])")
	if err != nil {
		t.Fatal(err)
	}
	st.msgs = map[uint32]fetchedModSeq{}
	for _, u := range us {
		fs, err := parseFetch([]response{u})
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) == 0 {
			continue // not a FETCH response
		}
		m := fetchModSeqRe.FindStringSubmatch(u.Text)
		if m == nil {
			t.Fatalf("FETCH without MODSEQ: %q", u.Text)
		}
		ms, _ := strconv.ParseUint(m[1], 10, 64)
		st.msgs[fs[0].uid] = fetchedModSeq{fetched: fs[0], modseq: ms}
	}
	return st
}

// TestBackupWhileServing runs "tern backup" against a running "tern
// serve" under continuous APPEND load from several connections, restores
// it with "tern restore" (TERN_BACKUP_PRELOAD: messages stored before
// the backup, default 300), and checks through a server on the restored
// directory that every APPEND acknowledged before the backup began is
// there byte for byte with its UID, flags and modseq, that UIDVALIDITY is
// unchanged and that "tern check" finds nothing.
func TestBackupWhileServing(t *testing.T) {
	root := t.TempDir()
	data, dest, restored := filepath.Join(root, "data"), filepath.Join(root, "backup"), filepath.Join(root, "restored")
	newDataDir(t, data)
	srv := startServer(t, data)
	defer srv.stop()

	rec := &appendRecorder{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() { rec.appendLoop(srv.addr, w, stop) })
	}
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer stopLoad()
	preload := 300
	if v, err := strconv.Atoi(os.Getenv("TERN_BACKUP_PRELOAD")); err == nil && v > 0 {
		preload = v
	}
	deadline := time.Now().Add(30*time.Second + time.Duration(preload)*5*time.Millisecond)
	for len(rec.snapshot()) < preload && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	before := rec.snapshot()
	t0 := time.Now()
	code, out, errs := runTern(t, "", "backup", dest, "--data", data)
	t1 := time.Now()
	if code != 0 {
		t.Fatalf("tern backup: exit %d\n%s%s", code, out, errs)
	}
	time.Sleep(200 * time.Millisecond) // load goes on after the backup
	stopLoad()
	if len(rec.errs) > 0 {
		t.Fatalf("APPEND load failed: %v\n%s", rec.errs, srv.logTail())
	}
	logLatencies(t, rec.snapshot(), len(before), t0, t1, out)
	live := readInbox(t, srv.addr)
	srv.stop()

	if code, out, errs := runTern(t, "", "restore", dest, "--data", restored); code != 0 {
		t.Fatalf("tern restore: exit %d\n%s%s", code, out, errs)
	}
	checkStore(t, restored, false)
	rsrv := startServer(t, restored)
	defer rsrv.stop()
	got := readInbox(t, rsrv.addr)

	if got.uidValidity != live.uidValidity || got.uidValidity == 0 {
		t.Fatalf("UIDVALIDITY after restore %d, before %d", got.uidValidity, live.uidValidity)
	}
	for _, a := range before {
		m, ok := got.msgs[a.uid]
		switch {
		case !ok:
			t.Errorf("UID %d acknowledged before the backup is missing after restore", a.uid)
		case !bytes.Equal(m.body, a.body):
			t.Errorf("UID %d: body differs after restore", a.uid)
		case !sameFlags(m.flags, a.flags):
			t.Errorf("UID %d: flags %q after restore, appended with %q", a.uid, m.flags, a.flags)
		}
	}
	// Everything restored is exactly as it was live: same UID, modseq,
	// flags and bytes (the load only appends, so nothing changed since),
	// hence the same modseq order.
	for uid, m := range got.msgs {
		l, ok := live.msgs[uid]
		if !ok || l.modseq != m.modseq || !sameFlags(l.flags, m.flags) || !bytes.Equal(l.body, m.body) {
			t.Errorf("UID %d after restore (modseq %d, %q) differs from live (%v, modseq %d, %q)", uid, m.modseq, m.flags, ok, l.modseq, l.flags)
		}
	}
	t.Logf("restored %d of %d messages (%d acknowledged before the backup)", len(got.msgs), len(live.msgs), len(before))
}

// sameFlags compares flag lists ignoring order and \Recent.
func sameFlags(a, b []string) bool {
	clean := func(fs []string) []string {
		out := slices.DeleteFunc(slices.Clone(fs), func(f string) bool { return f == `\Recent` })
		slices.Sort(out)
		return out
	}
	return slices.Equal(clean(a), clean(b))
}

// logLatencies reports how the backup affected APPEND latency (a
// measurement, not an assertion).
func logLatencies(t *testing.T, acks []ackedAppend, before int, t0, t1 time.Time, backupOut string) {
	var during, outside []time.Duration
	for _, a := range acks {
		d := a.end.Sub(a.start)
		if a.end.After(t0) && a.start.Before(t1) {
			during = append(during, d)
		} else {
			outside = append(outside, d)
		}
	}
	stats := func(ds []time.Duration) string {
		if len(ds) == 0 {
			return "none"
		}
		slices.Sort(ds)
		return fmt.Sprintf("%d appends, median %v, p99 %v, max %v", len(ds), ds[len(ds)/2],
			ds[len(ds)*99/100], ds[len(ds)-1])
	}
	t.Logf("tern backup took %v while %d messages were stored\n%sAPPEND latency during the backup: %s\nAPPEND latency otherwise: %s",
		t1.Sub(t0).Round(time.Millisecond), before, backupOut, stats(during), stats(outside))
}
