package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

func threadMsg(id, inReplyTo, refs string) store.NewMessage {
	h := "From: a@example.org\r\nSubject: s\r\n"
	if id != "" {
		h += "Message-ID: <" + id + ">\r\n"
	}
	if inReplyTo != "" {
		h += "In-Reply-To: " + inReplyTo + "\r\n"
	}
	if refs != "" {
		h += "References: " + refs + "\r\n"
	}
	return store.NewMessage{Body: []byte(h + "\r\nbody\r\n")}
}

// testThreads: messages of one thread share a THREADID (RFC 8474), in
// whatever order and batches they arrive, and Fetch returns the ids
// THREAD=REFERENCES needs.
func testThreads(t *testing.T, e *env) {
	ctx := context.Background()
	a := e.user("alice")
	if err := a.CreateMailbox(ctx, "Other", ""); err != nil {
		t.Fatal(err)
	}
	// A reply arrives before the message it answers, in another mailbox.
	if _, err := a.Append(ctx, "Other", []store.NewMessage{threadMsg("r1@x", "<root@x>", "")}); err != nil {
		t.Fatal(err)
	}
	_, err := a.Append(ctx, "INBOX", []store.NewMessage{
		threadMsg("root@x", "", ""),
		threadMsg("r2@x", "", "<root@x> <r1@x>"),
		threadMsg("other@x", "", ""),
		threadMsg("", "", ""),
		threadMsg("r3@x", "<r2@x> (comment)", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	in := mbox(t, a, "INBOX")
	ms := fetchAll(t, a, in.ID, uidsOf(t, a, in.ID), store.WantIDs|store.WantThreading)
	other := fetchAll(t, a, mbox(t, a, "Other").ID, []uint32{1}, store.WantIDs)
	if len(ms) != 5 || len(other) != 1 {
		t.Fatalf("got %d + %d messages", len(ms), len(other))
	}
	root := ms[0].ThreadID
	for _, m := range []store.Message{ms[1], ms[4], other[0]} {
		if m.ThreadID != root {
			t.Errorf("UID %d: THREADID %q, want the thread's %q", m.UID, m.ThreadID, root)
		}
	}
	if ms[2].ThreadID == root || ms[3].ThreadID == root || ms[2].ThreadID == ms[3].ThreadID {
		t.Errorf("unrelated messages share a THREADID: %q %q %q", root, ms[2].ThreadID, ms[3].ThreadID)
	}
	got := fmt.Sprintf("%q %q %q", ms[1].MessageID, ms[1].InReplyTo, ms[1].References)
	if want := `"r2@x" [] ["root@x" "r1@x"]`; got != want {
		t.Errorf("threading ids: %s, want %s", got, want)
	}
	if ms[4].MessageID != "r3@x" || !slices.Equal(ms[4].InReplyTo, []string{"r2@x"}) || ms[3].MessageID != "" {
		t.Errorf("threading ids: %+v / %+v", ms[4], ms[3])
	}
	// Copies keep the thread; Fetch without WantThreading leaves the ids out.
	if _, err := a.Copy(ctx, in.ID, []uint32{ms[4].UID}, "Other"); err != nil {
		t.Fatal(err)
	}
	cp := fetchAll(t, a, mbox(t, a, "Other").ID, []uint32{2}, store.WantIDs)
	if len(cp) != 1 || cp[0].ThreadID != root || cp[0].MessageID != "" {
		t.Errorf("copy: %+v", cp)
	}
}
