package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// md is a shorthand for a list of entries to set.
func md(kv ...string) []store.MetadataEntry {
	var out []store.MetadataEntry
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, store.MetadataEntry{Name: kv[i], Value: []byte(kv[i+1])})
	}
	return out
}

func setMD(t *testing.T, a store.Account, mailbox string, entries []store.MetadataEntry) {
	t.Helper()
	if err := a.SetMetadata(t.Context(), mailbox, entries); err != nil {
		t.Fatalf("SetMetadata(%q): %v", mailbox, err)
	}
}

// getMD returns "name=value" strings of GetMetadata's answer.
func getMD(t *testing.T, a store.Account, mailbox string, depth store.MetadataDepth, entries ...string) []string {
	t.Helper()
	got, err := a.GetMetadata(t.Context(), mailbox, entries, depth)
	if err != nil {
		t.Fatalf("GetMetadata(%q, %q): %v", mailbox, entries, err)
	}
	out := []string{}
	for _, e := range got {
		out = append(out, e.Name+"="+string(e.Value))
	}
	return out
}

// testMetadata: server and mailbox annotations, case-insensitive names,
// DEPTH, removal, binary values, validation, isolation and persistence.
func testMetadata(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	other := e.user("v")
	if err := a.CreateMailbox(ctx, "Work", ""); err != nil {
		t.Fatal(err)
	}
	equal(t, "empty server", getMD(t, a, "", store.MetadataDepthInfinity, "/shared", "/private"), []string{})

	setMD(t, a, "", md("/shared/comment", "server note", "/private/Vendor/X/Color", "red"))
	setMD(t, a, "INBOX", md("/private/comment", "mine", "/shared/comment", "shared one"))
	setMD(t, a, "Work", md("/private/comment", "work"))
	equal(t, "server", getMD(t, a, "", store.MetadataDepth0, "/shared/comment", "/private/vendor/x/color"),
		[]string{"/private/vendor/x/color=red", "/shared/comment=server note"})
	equal(t, "upper case name", getMD(t, a, "", store.MetadataDepth0, "/SHARED/Comment"), []string{"/shared/comment=server note"})
	equal(t, "inbox", getMD(t, a, "inbox", store.MetadataDepth0, "/private/comment", "/shared/comment", "/shared/missing"),
		[]string{"/private/comment=mine", "/shared/comment=shared one"})
	equal(t, "Work", getMD(t, a, "Work", store.MetadataDepth0, "/private/comment", "/shared/comment"), []string{"/private/comment=work"})
	equal(t, "other user", getMD(t, other, "", store.MetadataDepthInfinity, "/shared", "/private"), []string{})

	// DEPTH: the entry, its children, all descendants; each entry once.
	setMD(t, a, "INBOX", md("/private/f", "0", "/private/f/a", "1", "/private/f/a/b", "2", "/private/f/c", "3", "/private/fx", "4"))
	equal(t, "depth 0", getMD(t, a, "INBOX", store.MetadataDepth0, "/private/f"), []string{"/private/f=0"})
	equal(t, "depth 1", getMD(t, a, "INBOX", store.MetadataDepth1, "/private/f"), []string{"/private/f=0", "/private/f/a=1", "/private/f/c=3"})
	equal(t, "depth infinity", getMD(t, a, "INBOX", store.MetadataDepthInfinity, "/private/f", "/private/f/a"),
		[]string{"/private/f=0", "/private/f/a=1", "/private/f/a/b=2", "/private/f/c=3"})
	equal(t, "depth 1 of /private", getMD(t, a, "INBOX", store.MetadataDepth1, "/private"),
		[]string{"/private/comment=mine", "/private/f=0", "/private/fx=4"})

	// Replace, remove (nil), empty value (kept), NUL bytes, repeated name
	// (the last wins).
	bin := []byte("a\x00b\r\n\xff")
	setMD(t, a, "INBOX", []store.MetadataEntry{
		{Name: "/private/comment", Value: nil},
		{Name: "/shared/comment", Value: []byte{}},
		{Name: "/private/bin", Value: bin},
		{Name: "/private/f", Value: []byte("x")},
		{Name: "/PRIVATE/F", Value: []byte("y")},
		{Name: "/private/never", Value: nil},
	})
	got, err := a.GetMetadata(ctx, "INBOX", []string{"/private/bin", "/private/comment", "/shared/comment", "/private/f"}, store.MetadataDepth0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Name != "/private/bin" || !bytes.Equal(got[0].Value, bin) ||
		got[1].Name != "/private/f" || string(got[1].Value) != "y" ||
		got[2].Name != "/shared/comment" || got[2].Value == nil || len(got[2].Value) != 0 {
		t.Fatalf("after set/remove: %q", got)
	}

	// Errors.
	_, err = a.GetMetadata(ctx, "Nope", []string{"/private/comment"}, store.MetadataDepth0)
	wantErr(t, "GetMetadata missing mailbox", err, store.ErrNoSuchMailbox)
	wantErr(t, "SetMetadata missing mailbox", a.SetMetadata(ctx, "Nope", md("/private/c", "v")), store.ErrNoSuchMailbox)
	for _, bad := range []string{"", "/", "comment", "/other/x", "/private/", "/private//x", "/private/a*", "/shared/%", "/private/\x01", "/private/\xc3\xa9", "/privatex"} {
		_, err := a.GetMetadata(ctx, "", []string{bad}, store.MetadataDepth0)
		wantErr(t, fmt.Sprintf("GetMetadata(%q)", bad), err, store.ErrInvalidMetadataEntry)
		wantErr(t, fmt.Sprintf("SetMetadata(%q)", bad), a.SetMetadata(ctx, "", md(bad, "v")), store.ErrInvalidMetadataEntry)
	}
	wantErr(t, "SetMetadata(/private)", a.SetMetadata(ctx, "", md("/private", "v")), store.ErrInvalidMetadataEntry)
	// A failed call changes nothing, even its valid entries.
	wantErr(t, "SetMetadata partly invalid", a.SetMetadata(ctx, "", md("/shared/comment", "changed", "/bad", "v")), store.ErrInvalidMetadataEntry)
	equal(t, "after failed set", getMD(t, a, "", store.MetadataDepth0, "/shared/comment"), []string{"/shared/comment=server note"})

	e.reopen()
	a = e.account("u")
	equal(t, "after reopen", getMD(t, a, "INBOX", store.MetadataDepthInfinity, "/private/f"),
		[]string{"/private/f=y", "/private/f/a=1", "/private/f/a/b=2", "/private/f/c=3"})
}

// testMetadataMailboxes: annotations go with DELETE, follow RENAME (with
// the children), stay with INBOX when INBOX is renamed, and are not
// inherited by a mailbox created again under the same name.
func testMetadataMailboxes(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	for _, n := range []string{"A/B", "C", "P/Q"} {
		if err := a.CreateMailbox(ctx, n, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"INBOX", "A", "A/B", "C", "P"} {
		setMD(t, a, n, md("/private/comment", "on "+n))
	}
	if err := a.RenameMailbox(ctx, "A", "Z"); err != nil {
		t.Fatal(err)
	}
	equal(t, "renamed", getMD(t, a, "Z", store.MetadataDepth0, "/private/comment"), []string{"/private/comment=on A"})
	equal(t, "renamed child", getMD(t, a, "Z/B", store.MetadataDepth0, "/private/comment"), []string{"/private/comment=on A/B"})
	if err := a.CreateMailbox(ctx, "A", ""); err != nil {
		t.Fatal(err)
	}
	equal(t, "new A", getMD(t, a, "A", store.MetadataDepth0, "/private/comment"), []string{})

	if err := a.RenameMailbox(ctx, "INBOX", "Old"); err != nil {
		t.Fatal(err)
	}
	equal(t, "INBOX after rename", getMD(t, a, "INBOX", store.MetadataDepth0, "/private/comment"), []string{"/private/comment=on INBOX"})
	equal(t, "from INBOX", getMD(t, a, "Old", store.MetadataDepth0, "/private/comment"), []string{})

	if err := a.DeleteMailbox(ctx, "C"); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateMailbox(ctx, "C", ""); err != nil {
		t.Fatal(err)
	}
	equal(t, "C deleted and created", getMD(t, a, "C", store.MetadataDepth0, "/private/comment"), []string{})
	// P has a child: it stays as \Noselect but its annotations go.
	if err := a.DeleteMailbox(ctx, "P"); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateMailbox(ctx, "P", ""); err != nil {
		t.Fatal(err)
	}
	equal(t, "P deleted and created", getMD(t, a, "P", store.MetadataDepth0, "/private/comment"), []string{})
	// Deleted entries no longer count against the limits.
	many := make([]store.MetadataEntry, 0, store.MetadataMaxEntries)
	for i := range store.MetadataMaxEntries - 3 { // INBOX, Z and Z/B hold one each
		many = append(many, store.MetadataEntry{Name: fmt.Sprintf("/private/e%d", i), Value: []byte("v")})
	}
	setMD(t, a, "", many)
}

// testMetadataLimits: a value over MetadataMaxValueSize, more than
// MetadataMaxEntries entries and more than MetadataMaxTotal bytes are
// refused, atomically, and removals make room again.
func testMetadataLimits(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	big := bytes.Repeat([]byte("x"), store.MetadataMaxValueSize+1)
	err := a.SetMetadata(ctx, "", []store.MetadataEntry{{Name: "/private/ok", Value: []byte("1")}, {Name: "/private/big", Value: big}})
	var tl *store.MetadataTooLargeError
	if !errors.As(err, &tl) || tl.Max != store.MetadataMaxValueSize {
		t.Fatalf("value over the limit: %v", err)
	}
	equal(t, "after too large", getMD(t, a, "", store.MetadataDepthInfinity, "/private"), []string{})
	setMD(t, a, "", []store.MetadataEntry{{Name: "/private/max", Value: big[:store.MetadataMaxValueSize]}})

	// Count: the server and every mailbox together.
	setMD(t, a, "INBOX", md("/private/one", "1"))
	var many []store.MetadataEntry
	for i := range store.MetadataMaxEntries - 2 {
		many = append(many, store.MetadataEntry{Name: fmt.Sprintf("/shared/n%04d", i), Value: []byte("v")})
	}
	setMD(t, a, "", many)
	wantErr(t, "one entry too many", a.SetMetadata(ctx, "INBOX", md("/private/two", "2")), store.ErrMetadataTooMany)
	// Replacing an existing entry and removing one to add one are fine.
	setMD(t, a, "INBOX", md("/private/one", "replaced"))
	setMD(t, a, "INBOX", []store.MetadataEntry{{Name: "/private/one", Value: nil}, {Name: "/private/two", Value: []byte("2")}})
	wantErr(t, "still full", a.SetMetadata(ctx, "", md("/shared/extra", "x")), store.ErrMetadataTooMany)

	// Total size.
	b := e.user("w")
	val := bytes.Repeat([]byte("y"), store.MetadataMaxValueSize)
	n := store.MetadataMaxTotal / store.MetadataMaxValueSize
	for i := range n {
		setMD(t, b, "", []store.MetadataEntry{{Name: fmt.Sprintf("/private/v%d", i), Value: val}})
	}
	wantErr(t, "over total", b.SetMetadata(ctx, "", md("/private/last", "z")), store.ErrMetadataTooMany)
	setMD(t, b, "", []store.MetadataEntry{{Name: "/private/v0", Value: nil}, {Name: "/private/last", Value: []byte("z")}})
	if got := getMD(t, b, "", store.MetadataDepth0, "/private/last"); len(got) != 1 {
		t.Fatalf("after making room: %q", got)
	}
}

// testMetadataConcurrent: sessions adding entries at once cannot together
// pass the entry limit (it is checked in the write transaction).
func testMetadataConcurrent(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	var fill []store.MetadataEntry
	for i := range store.MetadataMaxEntries - 5 {
		fill = append(fill, store.MetadataEntry{Name: fmt.Sprintf("/private/f%d", i), Value: []byte("v")})
	}
	setMD(t, a, "", fill)
	const workers = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, tooMany := 0, 0
	for i := range workers {
		wg.Go(func() {
			acct, err := e.st.Account(ctx, "u")
			if err != nil {
				t.Error(err)
				return
			}
			defer acct.Close()
			err = acct.SetMetadata(ctx, "INBOX", md(fmt.Sprintf("/private/w%d", i), strings.Repeat("v", i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrMetadataTooMany):
				tooMany++
			default:
				t.Errorf("worker %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if ok != 5 || tooMany != workers-5 {
		t.Fatalf("%d succeeded, %d too many; want 5 and %d", ok, tooMany, workers-5)
	}
}
