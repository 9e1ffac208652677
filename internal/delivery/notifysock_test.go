package delivery

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store/storetest"
)

// The notify socket carries mailbox changes and ACL changes (tern share
// while tern serve runs) from another process's store to the server's
// notifier; a malformed line ends only that connection.
func TestNotifySocketCarriesACLChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), NotifySocketName)
	rec := &storetest.Recorder{}
	ln, err := ServeNotifySocket(path, rec, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n := NewSocketNotifier(path)
	defer n.Close()
	n.MailboxChanged("alice", 7, 42)
	n.ACLChanged("alice", "bob smith")
	n.ACLChanged("#shared", "anyone")
	n.ACLChanged("alice", "tab\there") // not expressible: dropped
	deadline := time.Now().Add(20 * time.Second)
	var acls []string
	var calls []storetest.Notification
	for len(acls) < 2 || len(calls) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("signals not received: %q %+v", acls, calls)
		}
		acls = append(acls, rec.TakeACLs()...)
		calls = append(calls, rec.Take()...)
		time.Sleep(10 * time.Millisecond)
	}
	if !slices.Equal(acls, []string{"alice bob smith", "#shared anyone"}) {
		t.Fatalf("ACL signals: %q", acls)
	}
	if len(calls) != 1 || calls[0] != (storetest.Notification{User: "alice", MailboxID: 7, ModSeq: 42}) {
		t.Fatalf("mailbox signals: %+v", calls)
	}
}
