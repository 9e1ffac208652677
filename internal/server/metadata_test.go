package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/tern-imap/tern/internal/store"
)

// doLit sends "tag " + before + a non-synchronizing literal of data +
// after, and returns the untagged lines and the tagged line.
func (c *client) doLit(before, data, after string, binary bool) ([]string, string) {
	c.t.Helper()
	tag := fmt.Sprintf("T%d", c.tag.Add(1))
	lit := "{"
	if binary {
		lit = "~{"
	}
	c.write(fmt.Sprintf("%s %s%s%d+}\r\n%s%s\r\n", tag, before, lit, len(data), data, after))
	return c.readUntil(tag)
}

// The examples of RFC 5464 §4.2 and §4.3 (mailbox and server entries),
// removal with NIL, case-insensitive names, MAXSIZE, DEPTH and binary
// values.
func TestMetadataCommands(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	if u := c.ok("CAPABILITY"); !strings.Contains(u[0], " METADATA LIST-METADATA") || strings.Contains(u[0], "METADATA-SERVER") {
		t.Fatalf("capability: %q", u[0])
	}

	// §4.3: a comment across two lines, as a literal.
	if _, tagged := c.doLit("SETMETADATA INBOX (/private/comment ", "My new comment across\r\ntwo lines.", ")", false); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("SETMETADATA literal: %q", tagged)
	}
	u := c.ok(`GETMETADATA "INBOX" /private/comment`)
	hasLine(t, u, "* METADATA INBOX (/private/comment {33}\r\nMy new comment across\r\ntwo lines.)")
	c.ok(`SETMETADATA INBOX (/private/comment "My comment" /shared/comment "Its sunny outside!")`)
	// Erratum 3868: several entries in parentheses, one response; names
	// in the order of the store (sorted), each once.
	u = c.ok(`GETMETADATA "INBOX" (/private/comment /shared/comment /Private/Comment)`)
	if len(u) != 1 {
		t.Fatalf("want one METADATA response, got %q", u)
	}
	hasLine(t, u, `* METADATA INBOX (/private/comment "My comment" /shared/comment "Its sunny outside!")`)
	// Removal (§4.3 example) and an entry without a value: NIL.
	c.ok(`SETMETADATA INBOX (/private/comment NIL)`)
	u = c.ok(`GETMETADATA INBOX (/private/comment /shared/comment)`)
	hasLine(t, u, `* METADATA INBOX (/private/comment NIL /shared/comment "Its sunny outside!")`)

	// Server annotations: mailbox "".
	c.ok(`SETMETADATA "" (/shared/comment "Shared comment" /private/vendor/tern/note "x")`)
	u = c.ok(`GETMETADATA "" /SHARED/COMMENT`)
	hasLine(t, u, `* METADATA "" (/shared/comment "Shared comment")`)

	// §4.2.1 MAXSIZE: values over it are left out, the largest size goes
	// into LONGENTRIES.
	c.ok(`SETMETADATA INBOX (/private/small "1234" /private/big "` + strings.Repeat("b", 50) + `" /private/bigger "` + strings.Repeat("c", 60) + `")`)
	u, tagged := c.do(`GETMETADATA (MAXSIZE 10) INBOX (/private/small /private/big /private/bigger)`)
	if tagged != "OK [METADATA LONGENTRIES 60] GETMETADATA completed" {
		t.Fatalf("MAXSIZE tagged: %q", tagged)
	}
	hasLine(t, u, `* METADATA INBOX (/private/small "1234")`)
	// The options after the mailbox, as in the RFC's examples.
	if _, tagged = c.do(`GETMETADATA INBOX (MAXSIZE 1024) (/private/small /private/big)`); tagged != "OK GETMETADATA completed" {
		t.Fatalf("MAXSIZE large enough: %q", tagged)
	}

	// §4.2.2 DEPTH.
	c.ok(`SETMETADATA INBOX (/private/filters/values/small "SMALLER 5000" /private/filters/values/boss "FROM \"boss@example.com\"" /private/filters/values/boss/x "deep")`)
	u = c.ok(`GETMETADATA "INBOX" (DEPTH 1) (/private/filters/values)`)
	hasLine(t, u, `* METADATA INBOX (/private/filters/values/boss "FROM \"boss@example.com\"" /private/filters/values/small "SMALLER 5000")`)
	u = c.ok(`GETMETADATA (DEPTH infinity) INBOX /private/filters`)
	hasLine(t, u, `* METADATA INBOX (/private/filters/values/boss "FROM \"boss@example.com\"" /private/filters/values/boss/x "deep" /private/filters/values/small "SMALLER 5000")`)
	u = c.ok(`GETMETADATA (DEPTH 0) INBOX /private/filters`)
	hasLine(t, u, `* METADATA INBOX (/private/filters NIL)`)

	// Binary: a literal8 with NUL and CRLF comes back as a literal8; an
	// empty string is a value, not a removal.
	bin := "a\x00b\r\nc"
	if _, tagged := c.doLit("SETMETADATA INBOX (/shared/bin ", bin, ` /shared/empty "")`, true); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("SETMETADATA literal8: %q", tagged)
	}
	u = c.ok(`GETMETADATA INBOX (/shared/bin /shared/empty)`)
	hasLine(t, u, fmt.Sprintf("* METADATA INBOX (/shared/bin ~{%d}\r\n%s /shared/empty \"\")", len(bin), bin))
	if _, tagged := c.doLit("SETMETADATA INBOX (/shared/bin ", bin, ")", false); !strings.HasPrefix(tagged, "BAD") {
		t.Fatalf("NUL in a plain literal: %q", tagged)
	}

	// Bad entry names are BAD; a missing mailbox is NO.
	for _, cmd := range []string{
		`GETMETADATA INBOX /private/a*`, `GETMETADATA INBOX comment`, `GETMETADATA INBOX (/private/x /other/y)`,
		`GETMETADATA INBOX /private//x`, `GETMETADATA INBOX /private/x/`, `SETMETADATA INBOX (/private "x")`,
		`SETMETADATA INBOX (/vendor/x "x")`, `SETMETADATA INBOX (/shared/%x "x")`, `GETMETADATA (DEPTH 2) INBOX /private/x`,
		`SETMETADATA INBOX /private/x "y"`, `GETMETADATA INBOX`,
	} {
		c.expect(cmd, "BAD")
	}
	c.expect(`GETMETADATA Nope /private/comment`, "NO [NONEXISTENT]")
	c.expect(`SETMETADATA Nope (/private/comment "x")`, "NO [NONEXISTENT]")
	// A failed SETMETADATA changes nothing.
	c.expect(`SETMETADATA INBOX (/private/small "changed" /bad "x")`, "BAD")
	hasLine(t, c.ok(`GETMETADATA INBOX /private/small`), `* METADATA INBOX (/private/small "1234")`)

	// Another user sees none of it.
	ts.addUser("bob", "pw")
	b := ts.login("bob", "pw")
	hasLine(t, b.ok(`GETMETADATA "" /shared/comment`), `* METADATA "" (/shared/comment NIL)`)
	hasLine(t, b.ok(`GETMETADATA INBOX /shared/comment`), `* METADATA INBOX (/shared/comment NIL)`)
}

// The limits: NO [METADATA MAXSIZE n] for a value over the per-value
// limit, NO [METADATA TOOMANY] past the entry count.
func TestMetadataLimits(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	big := strings.Repeat("x", store.MetadataMaxValueSize+1)
	_, tagged := c.doLit("SETMETADATA INBOX (/private/big ", big, ")", false)
	if want := fmt.Sprintf("NO [METADATA MAXSIZE %d]", store.MetadataMaxValueSize); !strings.HasPrefix(tagged, want) {
		t.Fatalf("value over the limit: %q, want %q", tagged, want)
	}
	if _, tagged := c.doLit("SETMETADATA INBOX (/private/big ", big[1:], ")", false); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("value at the limit: %q", tagged)
	}

	// Fill up to the count limit through the store, then one more.
	acct, err := ts.store.Account(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	var many []store.MetadataEntry
	for i := range store.MetadataMaxEntries - 1 {
		many = append(many, store.MetadataEntry{Name: fmt.Sprintf("/shared/e%d", i), Value: []byte("v")})
	}
	if err := acct.SetMetadata(context.Background(), "", many); err != nil {
		t.Fatal(err)
	}
	c.expect(`SETMETADATA INBOX (/private/one "more")`, "NO [METADATA TOOMANY]")
	c.ok(`SETMETADATA INBOX (/private/big NIL /private/one "more")`)
	c.expect(`SETMETADATA "" (/private/two "more")`, "NO [METADATA TOOMANY]")
}

// Annotations go with DELETE and follow RENAME (children included);
// renaming INBOX leaves them on INBOX.
func TestMetadataDeleteRename(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.ok("CREATE A/B")
	c.ok(`SETMETADATA A (/private/comment "on A")`)
	c.ok(`SETMETADATA A/B (/shared/comment "on A/B")`)
	c.ok(`SETMETADATA INBOX (/private/comment "on INBOX")`)

	c.ok("RENAME A Z")
	hasLine(t, c.ok(`GETMETADATA Z /private/comment`), `* METADATA Z (/private/comment "on A")`)
	hasLine(t, c.ok(`GETMETADATA Z/B /shared/comment`), `* METADATA Z/B (/shared/comment "on A/B")`)
	c.expect(`GETMETADATA A /private/comment`, "NO [NONEXISTENT]")
	c.ok("CREATE A")
	hasLine(t, c.ok(`GETMETADATA A /private/comment`), `* METADATA A (/private/comment NIL)`)

	c.ok("DELETE Z/B")
	c.ok("CREATE Z/B")
	hasLine(t, c.ok(`GETMETADATA Z/B /shared/comment`), `* METADATA Z/B (/shared/comment NIL)`)
	// Z has a child, so DELETE leaves it as \Noselect: its annotations go.
	c.ok("CREATE Z/C")
	c.ok("DELETE Z")
	c.ok("CREATE Z")
	hasLine(t, c.ok(`GETMETADATA Z /private/comment`), `* METADATA Z (/private/comment NIL)`)

	c.ok("RENAME INBOX Old")
	hasLine(t, c.ok(`GETMETADATA INBOX /private/comment`), `* METADATA INBOX (/private/comment "on INBOX")`)
	hasLine(t, c.ok(`GETMETADATA Old /private/comment`), `* METADATA Old (/private/comment NIL)`)
}

// LIST-METADATA (RFC 9590): each listed mailbox's METADATA right after
// its LIST response; MAXSIZE gives LONGENTRIES on the tagged OK.
func TestListMetadata(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	c.ok("CREATE Work")
	c.ok("CREATE Entwürfe") // non-ASCII: the same spelling in LIST and METADATA
	c.ok(`SETMETADATA INBOX (/shared/comment "Inbox" /private/color "red")`)
	c.ok(`SETMETADATA Work (/private/color "` + strings.Repeat("g", 40) + `")`)
	c.ok("CREATE P/Q")
	c.ok("DELETE P") // P stays as a \Noselect parent: no METADATA for it

	u := c.ok(`LIST "" "*" RETURN (METADATA (/private/color /shared/comment))`)
	var lists, metas []string
	for i, l := range u {
		switch {
		case strings.HasPrefix(l, "* LIST ") && strings.Contains(l, `\Noselect`):
			if i+1 < len(u) && strings.HasPrefix(u[i+1], "* METADATA ") {
				t.Fatalf("METADATA for a \\Noselect mailbox at %d:\n%s", i, strings.Join(u, "\n"))
			}
		case strings.HasPrefix(l, "* LIST "):
			lists = append(lists, l)
			if i+1 >= len(u) || !strings.HasPrefix(u[i+1], "* METADATA ") {
				t.Fatalf("LIST not followed by METADATA at %d:\n%s", i, strings.Join(u, "\n"))
			}
		case strings.HasPrefix(l, "* METADATA "):
			metas = append(metas, l)
		}
	}
	if len(lists) != len(metas) || len(lists) < 4 {
		t.Fatalf("%d LIST and %d METADATA responses:\n%s", len(lists), len(metas), strings.Join(u, "\n"))
	}
	hasLine(t, u, `* METADATA INBOX (/private/color "red" /shared/comment "Inbox")`)
	hasLine(t, u, `* METADATA Work (/private/color "`+strings.Repeat("g", 40)+`" /shared/comment NIL)`)
	hasLine(t, u, `* METADATA Entw&APw-rfe (/private/color NIL /shared/comment NIL)`)

	u, tagged := c.do(`LIST "" % RETURN (METADATA (MAXSIZE 10) (/private/color) CHILDREN)`)
	if tagged != "OK [METADATA LONGENTRIES 40] LIST completed" {
		t.Fatalf("LIST MAXSIZE tagged: %q", tagged)
	}
	hasLine(t, u, `* METADATA INBOX (/private/color "red")`)
	for _, l := range u {
		if strings.HasPrefix(l, "* METADATA Work") {
			t.Fatalf("value over MAXSIZE sent: %q", l)
		}
	}
	// Without the option: no METADATA responses.
	for _, l := range c.ok(`LIST "" "*"`) {
		if strings.HasPrefix(l, "* METADATA") {
			t.Fatalf("METADATA without the return option: %q", l)
		}
	}
	c.expect(`LIST "" * RETURN (METADATA (/private/a*))`, "BAD")
	c.expect(`LIST "" * RETURN (METADATA ())`, "BAD")
}

// go-imap's client (an independent implementation) sets, reads with
// DEPTH and MAXSIZE (options after the mailbox), and removes annotations.
func TestGoIMAPMetadata(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := dialGoIMAP(t, ts, nil)
	if !c.Caps().Has("METADATA") {
		t.Fatal("METADATA not advertised")
	}
	val := func(s string) *[]byte { b := []byte(s); return &b }
	if err := c.SetMetadata("INBOX", map[string]*[]byte{
		"/private/comment": val("mine"), "/shared/comment": val("ours"), "/private/tree/a": val("12345678"),
	}).Wait(); err != nil {
		t.Fatalf("SETMETADATA: %v", err)
	}
	if err := c.SetMetadata("", map[string]*[]byte{"/shared/comment": val("server")}).Wait(); err != nil {
		t.Fatalf("SETMETADATA server: %v", err)
	}
	maxSize := uint32(4)
	data, err := c.GetMetadata("INBOX", []string{"/private", "/shared"}, &imapclient.GetMetadataOptions{
		Depth: imapclient.GetMetadataDepthInfinity, MaxSize: &maxSize,
	}).Wait()
	if err != nil {
		t.Fatalf("GETMETADATA: %v", err)
	}
	got := map[string]string{}
	for k, v := range data.Entries {
		got[k] = "NIL"
		if v != nil {
			got[k] = string(*v)
		}
	}
	want := map[string]string{"/private/comment": "mine", "/shared/comment": "ours"} // /private/tree/a is over MAXSIZE
	if len(got) != len(want) || got["/private/comment"] != "mine" || got["/shared/comment"] != "ours" {
		t.Fatalf("GETMETADATA = %v, want %v", got, want)
	}
	if err := c.SetMetadata("INBOX", map[string]*[]byte{"/private/comment": nil}).Wait(); err != nil {
		t.Fatalf("SETMETADATA NIL: %v", err)
	}
	data, err = c.GetMetadata("INBOX", []string{"/private/comment"}, nil).Wait()
	if err != nil {
		t.Fatalf("GETMETADATA after removal: %v", err)
	}
	if v, ok := data.Entries["/private/comment"]; !ok || v != nil {
		t.Fatalf("removed entry: %v (present %v), want NIL", v, ok)
	}
	data, err = c.GetMetadata("", []string{"/shared/comment"}, nil).Wait()
	if err != nil || data.Entries["/shared/comment"] == nil || string(*data.Entries["/shared/comment"]) != "server" {
		t.Fatalf("server entry: %+v, %v", data, err)
	}
}
