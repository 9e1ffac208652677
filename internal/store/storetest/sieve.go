package storetest

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// sieveList returns "name" or "name*" (active) for each stored script.
func sieveList(t *testing.T, a store.Account) []string {
	t.Helper()
	l, err := a.SieveScripts(t.Context())
	if err != nil {
		t.Fatalf("SieveScripts: %v", err)
	}
	out := []string{}
	for _, s := range l {
		n := s.Name
		if s.Active {
			n += "*"
		}
		out = append(out, n)
	}
	return out
}

func putScript(t *testing.T, a store.Account, name, content string) {
	t.Helper()
	if err := a.PutSieveScript(t.Context(), name, []byte(content)); err != nil {
		t.Fatalf("PutSieveScript(%q): %v", name, err)
	}
}

func wantScript(t *testing.T, a store.Account, name, content string) {
	t.Helper()
	got, err := a.SieveScript(t.Context(), name)
	if err != nil || string(got) != content {
		t.Fatalf("SieveScript(%q) = %q, %v; want %q", name, got, err, content)
	}
}

func wantActive(t *testing.T, a store.Account, name, content string) {
	t.Helper()
	got, n, err := a.ActiveSieveScript(t.Context())
	if err != nil || n != name || string(got) != content {
		t.Fatalf("ActiveSieveScript = %q, %q, %v; want %q, %q", got, n, err, content, name)
	}
}

// testSieveScripts: RFC 5804 semantics of the script store: put/replace,
// one active script, deleting the active one refused, rename keeps the
// active mark, octet-exact names, isolation and persistence.
func testSieveScripts(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	other := e.user("v")
	equal(t, "empty", sieveList(t, a), []string{})
	wantActive(t, a, "", "")

	putScript(t, a, "vacation", "require \"vacation\";\r\n")
	putScript(t, a, "Vacation", "keep;")
	putScript(t, a, "spam ✓", "discard;")
	putScript(t, a, "empty", "")
	equal(t, "after put", sieveList(t, a), []string{"Vacation", "empty", "spam ✓", "vacation"})
	wantScript(t, a, "vacation", "require \"vacation\";\r\n")
	wantScript(t, a, "Vacation", "keep;")
	wantScript(t, a, "empty", "")
	_, err := a.SieveScript(ctx, "VACATION")
	wantErr(t, "SieveScript of another case", err, store.ErrNoSuchScript)
	equal(t, "other user", sieveList(t, other), []string{})

	// Activation: one at a time; activating another deactivates the first.
	wantErr(t, "activate missing", a.SetActiveSieveScript(ctx, "nope"), store.ErrNoSuchScript)
	if err := a.SetActiveSieveScript(ctx, "vacation"); err != nil {
		t.Fatal(err)
	}
	wantActive(t, a, "vacation", "require \"vacation\";\r\n")
	if err := a.SetActiveSieveScript(ctx, "vacation"); err != nil {
		t.Fatalf("activating the active script again: %v", err)
	}
	if err := a.SetActiveSieveScript(ctx, "spam ✓"); err != nil {
		t.Fatal(err)
	}
	equal(t, "one active", sieveList(t, a), []string{"Vacation", "empty", "spam ✓*", "vacation"})
	wantActive(t, a, "spam ✓", "discard;")
	wantActive(t, other, "", "")

	// Replacing the active script keeps it active with the new content.
	putScript(t, a, "spam ✓", "fileinto \"Junk\";")
	wantActive(t, a, "spam ✓", "fileinto \"Junk\";")

	// The active script cannot be deleted; others can.
	wantErr(t, "delete active", a.DeleteSieveScript(ctx, "spam ✓"), store.ErrScriptActive)
	wantErr(t, "delete missing", a.DeleteSieveScript(ctx, "nope"), store.ErrNoSuchScript)
	if err := a.DeleteSieveScript(ctx, "Vacation"); err != nil {
		t.Fatal(err)
	}
	equal(t, "after delete", sieveList(t, a), []string{"empty", "spam ✓*", "vacation"})

	// Rename: the active mark follows; onto an existing name refused.
	wantErr(t, "rename onto existing", a.RenameSieveScript(ctx, "spam ✓", "vacation"), store.ErrScriptExists)
	wantErr(t, "rename missing", a.RenameSieveScript(ctx, "nope", "x"), store.ErrNoSuchScript)
	wantErr(t, "rename to bad name", a.RenameSieveScript(ctx, "empty", "a\nb"), store.ErrInvalidScriptName)
	if err := a.RenameSieveScript(ctx, "spam ✓", "junk"); err != nil {
		t.Fatal(err)
	}
	equal(t, "after rename", sieveList(t, a), []string{"empty", "junk*", "vacation"})
	wantActive(t, a, "junk", "fileinto \"Junk\";")
	_, err = a.SieveScript(ctx, "spam ✓")
	wantErr(t, "old name after rename", err, store.ErrNoSuchScript)

	// Deactivate, then the former active script can be deleted.
	if err := a.SetActiveSieveScript(ctx, ""); err != nil {
		t.Fatal(err)
	}
	wantActive(t, a, "", "")
	if err := a.DeleteSieveScript(ctx, "junk"); err != nil {
		t.Fatal(err)
	}
	if err := a.SetActiveSieveScript(ctx, "vacation"); err != nil {
		t.Fatal(err)
	}

	e.reopen()
	a = e.account("u")
	equal(t, "after reopen", sieveList(t, a), []string{"empty", "vacation*"})
	wantActive(t, a, "vacation", "require \"vacation\";\r\n")
	if err := e.st.DeleteUser(ctx, "v"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateUser(ctx, "v", "h"); err != nil {
		t.Fatal(err)
	}
	equal(t, "recreated user", sieveList(t, e.account("v")), []string{})
}

// testSieveLimits: names, size and count limits.
func testSieveLimits(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	for _, name := range []string{"", "a\x00b", "tab\there", "del\x7f", "c1\u0085", "ls\u2028", "ps\u2029",
		"\xff\xfe", "e\u0301", strings.Repeat("x", store.SieveMaxNameLen+1)} {
		wantErr(t, fmt.Sprintf("put %q", name), a.PutSieveScript(ctx, name, []byte("keep;")), store.ErrInvalidScriptName)
	}
	for _, name := range []string{"é", "a b", "\"quoted\"", "back\\slash", "日本語", strings.Repeat("x", store.SieveMaxNameLen)} {
		putScript(t, a, name, "keep;")
		if err := a.DeleteSieveScript(ctx, name); err != nil {
			t.Fatalf("delete %q: %v", name, err)
		}
	}

	big := bytes.Repeat([]byte("#"), store.SieveMaxScriptSize)
	if err := a.PutSieveScript(ctx, "max", big); err != nil {
		t.Fatalf("script of exactly the limit: %v", err)
	}
	wantErr(t, "over size", a.PutSieveScript(ctx, "big", append(big, '#')), store.ErrScriptTooLarge)
	wantErr(t, "replace over size", a.PutSieveScript(ctx, "max", append(big, '#')), store.ErrScriptTooLarge)
	if err := a.DeleteSieveScript(ctx, "max"); err != nil {
		t.Fatal(err)
	}

	for i := range store.SieveMaxScripts {
		putScript(t, a, fmt.Sprintf("s%02d", i), "keep;")
	}
	wantErr(t, "one script too many", a.PutSieveScript(ctx, "more", []byte("keep;")), store.ErrTooManyScripts)
	putScript(t, a, "s00", "discard;") // replacing needs no new slot
	wantScript(t, a, "s00", "discard;")
	if n := len(sieveList(t, a)); n != store.SieveMaxScripts {
		t.Fatalf("%d scripts, want %d", n, store.SieveMaxScripts)
	}
}

// testSieveConcurrent: concurrent puts of new names never exceed the
// script count limit, and concurrent activations leave exactly one
// script active.
func testSieveConcurrent(t *testing.T, e *env) {
	ctx := e.ctx
	a := e.user("u")
	b := e.account("u")
	for i := range store.SieveMaxScripts - 2 {
		putScript(t, a, fmt.Sprintf("s%02d", i), "keep;")
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		acct := a
		if i%2 == 1 {
			acct = b
		}
		wg.Go(func() { errs[i] = acct.PutSieveScript(ctx, fmt.Sprintf("new%d", i), []byte("keep;")) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		default:
			wantErr(t, "concurrent put", err, store.ErrTooManyScripts)
		}
	}
	if ok != 2 || len(sieveList(t, a)) != store.SieveMaxScripts {
		t.Fatalf("%d puts succeeded, %d scripts; want 2 and %d", ok, len(sieveList(t, a)), store.SieveMaxScripts)
	}

	for i := range 8 {
		acct := a
		if i%2 == 1 {
			acct = b
		}
		wg.Go(func() {
			if err := acct.SetActiveSieveScript(ctx, fmt.Sprintf("s%02d", i)); err != nil {
				t.Errorf("activate: %v", err)
			}
		})
	}
	wg.Wait()
	active := 0
	for _, n := range sieveList(t, a) {
		if strings.HasSuffix(n, "*") {
			active++
		}
	}
	if active != 1 {
		t.Fatalf("%d active scripts after concurrent activations", active)
	}
}
