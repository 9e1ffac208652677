package e2e_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// testCurl uses curl's IMAP support: list mailboxes, fetch by UID,
// upload (APPEND), a search and a custom EXAMINE.
func testCurl(t *testing.T, srv *server) {
	curl := need(t, "curl")
	const user, pass = "curl", "curl-secret"
	c := srv.client(t, user, pass)
	m1 := testMessage("Bob <bob@example.org>", "curl one", 1)
	m2 := testMessage("Carol <carol@example.org>", "curl two", 2)
	// Expunge a first message so UIDs and sequence numbers differ:
	// curl's ;UID= must address by UID.
	gone := appendMsg(t, c, "INBOX", testMessage("x <x@example.org>", "curl gone", 0), "\\Deleted")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(imap.UIDSetNum(gone)).Close(); err != nil {
		t.Fatal(err)
	}
	uid1 := appendMsg(t, c, "INBOX", m1)
	uid2 := appendMsg(t, c, "INBOX", m2, "\\Seen")

	base := fmt.Sprintf("imaps://localhost:%s", srv.imapsPort)
	curlArgs := func(extra ...string) []string {
		return append([]string{"--silent", "--show-error", "--cacert", srv.certFile, "-u", user + ":" + pass}, extra...)
	}
	tmp := t.TempDir()

	t.Run("list", func(t *testing.T) {
		out := run(t, nil, tmp, curl, curlArgs(base+"/")...)
		for _, name := range []string{"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"} {
			if !regexp.MustCompile(`(?m)^\* LIST \([^)]*\) "[^"]*" "?` + name + `"?\r?$`).MatchString(out) {
				t.Errorf("LIST output lacks %s:\n%s", name, out)
			}
		}
	})

	t.Run("fetch-by-uid", func(t *testing.T) {
		for _, tc := range []struct {
			uid  uint32
			want []byte
		}{{uint32(uid1), m1}, {uint32(uid2), m2}} {
			out := filepath.Join(tmp, fmt.Sprintf("uid%d.eml", tc.uid))
			run(t, nil, tmp, curl, curlArgs("-o", out, fmt.Sprintf("%s/INBOX;UID=%d", base, tc.uid))...)
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("UID %d: curl got %q, want %q", tc.uid, got, tc.want)
			}
		}
		// A read by curl uses BODY[], which sets \Seen on m1.
		msgs := mailboxContents(t, c, "INBOX")
		if m, ok := findBody(msgs, m1); !ok || !m.has("\\Seen") {
			t.Errorf("after curl fetched UID %d: %+v, want \\Seen set", uid1, m)
		}
	})

	t.Run("fetch-section", func(t *testing.T) {
		// ;SECTION=TEXT fetches BODY[TEXT]: the body after the header.
		out := filepath.Join(tmp, "text.eml")
		run(t, nil, tmp, curl, curlArgs("-o", out, fmt.Sprintf("%s/INBOX;UID=%d;SECTION=TEXT", base, uid2))...)
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		want := m2[bytes.Index(m2, []byte("\r\n\r\n"))+4:]
		if !bytes.Equal(got, want) {
			t.Errorf("BODY[TEXT] of UID %d: curl got %q, want %q", uid2, got, want)
		}
	})

	t.Run("examine", func(t *testing.T) {
		out := run(t, nil, tmp, curl, curlArgs("-X", "EXAMINE INBOX", base+"/")...)
		if !strings.Contains(out, "* 2 EXISTS") {
			t.Errorf("EXAMINE output lacks '* 2 EXISTS':\n%s", out)
		}
		if !regexp.MustCompile(`UIDVALIDITY \d+`).MatchString(out) {
			t.Errorf("EXAMINE output lacks UIDVALIDITY:\n%s", out)
		}
	})

	t.Run("search", func(t *testing.T) {
		// A query part runs SEARCH with it in the mailbox.
		out := run(t, nil, tmp, curl, curlArgs(base+"/INBOX?SUBJECT%20%22curl%20two%22")...)
		if !regexp.MustCompile(`(?m)^\* SEARCH 2\r?$`).MatchString(out) {
			t.Errorf("SEARCH SUBJECT \"curl two\": got\n%s\nwant '* SEARCH 2' (sequence number of UID %d)", out, uid2)
		}
	})

	t.Run("upload", func(t *testing.T) {
		m3 := testMessage("Dave <dave@example.org>", "curl upload", 3)
		file := filepath.Join(tmp, "up.eml")
		if err := os.WriteFile(file, m3, 0o600); err != nil {
			t.Fatal(err)
		}
		run(t, nil, tmp, curl, curlArgs("-T", file, base+"/Archive")...)
		msgs := mailboxContents(t, c, "Archive")
		if len(msgs) != 1 || !bytes.Equal(msgs[0].Body, m3) {
			t.Fatalf("Archive after curl upload: %d messages %+v, want exactly the uploaded bytes", len(msgs), msgs)
		}
	})
}
