package delivery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

func writeFile(t *testing.T, p, data string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

func mkMaildir(t *testing.T, dir string) {
	t.Helper()
	for _, s := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, s), 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

// msgInfo is a message as compared in tests.
type msgInfo struct {
	Body  string
	Flags string // sorted, space-separated
	Date  int64  // unix seconds
}

// snapshot returns every selectable mailbox's messages in UID order.
func snapshot(t *testing.T, a store.Account) map[string][]msgInfo {
	t.Helper()
	ctx := context.Background()
	boxes, err := a.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]msgInfo{}
	for _, mb := range boxes {
		if mb.NoSelect {
			continue
		}
		_, uids, err := a.Snapshot(ctx, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		list := []msgInfo{}
		if len(uids) > 0 {
			err = a.Fetch(ctx, mb.ID, uids, store.WantFlags|store.WantDates, func(m *store.Message) error {
				body, err := readBody(ctx, a, mb.ID, m.UID)
				if err != nil {
					return err
				}
				f := slices.Clone(m.Flags)
				slices.Sort(f)
				list = append(list, msgInfo{Body: string(body), Flags: strings.Join(f, " "), Date: m.InternalDate.Unix()})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		out[mb.Name] = list
	}
	return out
}

func importT(t *testing.T, a store.Account, src string, opts ImportOptions) ImportStats {
	t.Helper()
	st, err := Import(context.Background(), a, src, opts)
	if err != nil {
		t.Fatalf("Import(%s): %v", src, err)
	}
	return st
}

// TestImportDovecotMaildir imports a Maildir laid out as Dovecot writes
// it: cur/new/tmp, ":2,<flags>" names, dovecot-keywords, dovecot-uidlist,
// Maildir++ folders with modified UTF-7 names.
func TestImportDovecotMaildir(t *testing.T) {
	e := newEnv(t, Options{}, "alice")
	a := e.account("alice")
	root := filepath.Join(t.TempDir(), "Maildir")
	mkMaildir(t, root)
	t1 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	t2 := time.Date(2024, 3, 2, 11, 30, 0, 0, time.UTC)
	t3 := time.Date(2024, 3, 3, 12, 0, 5, 0, time.UTC)
	m1 := "From: a@example.org\nSubject: one\n\nfirst\n"
	m2 := "From: b@example.org\nSubject: two\n\nsecond\n>From quoted stays\n"
	m3 := "From: c@example.org\nSubject: new\n\nthird\n"
	// UID order (dovecot-uidlist) differs from name/time order: m2 was
	// saved first although its name is later.
	n1 := "1709287200.M1P100Q1.host,S=42,W=46"
	n2 := "1709379000.M2P100Q2.host,S=60,W=65"
	writeFile(t, filepath.Join(root, "cur", n1+":2,FSa"), m1, t1)
	writeFile(t, filepath.Join(root, "cur", n2+":2,RPb"), m2, t2)
	writeFile(t, filepath.Join(root, "new", "1709467205.M3P100Q3.host"), m3, t3)
	writeFile(t, filepath.Join(root, "dovecot-keywords"), "0 $Junk\n1 Work\n", time.Time{})
	writeFile(t, filepath.Join(root, "dovecot-uidlist"), "3 V1709280000 N4 Gabc\n2 :"+n2+"\n5 W46 :"+n1+"\n", time.Time{})
	writeFile(t, filepath.Join(root, "subscriptions"), "Sub\n", time.Time{})
	// Maildir++ folders: .Sub, .Sub.Folder, and a non-ASCII name.
	sub := filepath.Join(root, ".Sub.Folder")
	mkMaildir(t, sub)
	writeFile(t, filepath.Join(sub, "maildirfolder"), "", time.Time{})
	writeFile(t, filepath.Join(sub, "cur", "1709000000.M9P1.host:2,T"), "Subject: deep\n\nx\n", t1)
	de := filepath.Join(root, ".Entw&APw-rfe")
	mkMaildir(t, de)
	writeFile(t, filepath.Join(de, "cur", "1709000001.M9P1.host:2,D"), "Subject: draft\n\ny\n", t2)
	// Not mail: Dovecot's index files, a dot-directory without cur/new.
	writeFile(t, filepath.Join(root, "dovecot.index.log"), "junk", time.Time{})
	os.MkdirAll(filepath.Join(root, ".notmail"), 0o700)

	st := importT(t, a, root, ImportOptions{})
	if st.Imported != 5 || st.Duplicates != 0 {
		t.Fatalf("stats %+v", st)
	}
	got := snapshot(t, a)
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	want := map[string][]msgInfo{
		"INBOX": {
			{crlf(m2), `$Forwarded Work \Answered`, t2.Unix()},
			{crlf(m1), `$Junk \Flagged \Seen`, t1.Unix()},
			{crlf(m3), ``, t3.Unix()},
		},
		"Sub":        {},
		"Sub/Folder": {{crlf("Subject: deep\n\nx\n"), `\Deleted`, t1.Unix()}},
		"Entwürfe":   {{crlf("Subject: draft\n\ny\n"), `\Draft`, t2.Unix()}},
	}
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Errorf("%s = %+v\nwant %+v", name, got[name], w)
		}
	}
	if _, ok := got["notmail"]; ok {
		t.Error("imported a dot-directory without cur/new")
	}

	// Idempotent: a second import stores nothing.
	st = importT(t, a, root, ImportOptions{})
	if st.Imported != 0 || st.Duplicates != 5 {
		t.Fatalf("second import: %+v", st)
	}
	if again := snapshot(t, a); fmt.Sprint(again) != fmt.Sprint(got) {
		t.Fatalf("second import changed the mailboxes:\n%v\n%v", again, got)
	}
	// A new message in the source is picked up by the next import.
	writeFile(t, filepath.Join(root, "new", "1709467999.M4P100Q4.host"), "Subject: later\n\nz\n", t3)
	st = importT(t, a, root, ImportOptions{})
	if st.Imported != 1 || st.Duplicates != 5 {
		t.Fatalf("third import: %+v", st)
	}
	// --mailbox puts the tree below a prefix.
	st = importT(t, a, root, ImportOptions{Mailbox: "Old"})
	if st.Imported != 6 {
		t.Fatalf("import into Old: %+v", st)
	}
	got = snapshot(t, a)
	if len(got["Old"]) != 4 || len(got["Old/Sub/Folder"]) != 1 || len(got["Old/Entwürfe"]) != 1 {
		t.Fatalf("prefixed import: %v", got)
	}
}

// muttMbox is an mbox as mutt writes it (mboxo quoting, Status/X-Status,
// Content-Length and Lines headers, an empty line between messages).
const muttMbox = `From alice@example.org Mon Jan  6 10:00:00 2025
Return-Path: <alice@example.org>
From: Alice <alice@example.org>
Subject: first
Date: Mon, 6 Jan 2025 10:00:00 +0000
Status: RO
X-Status: A
Content-Length: 50
Lines: 3

Hello.
>From the archives: quoted by mutt
Bye.

From bob@example.org Tue Jan  7 11:22:33 2025
From: Bob <bob@example.org>
Subject: second
Status: O
X-Keywords: $Label1 Work
Lines: 1

Unread, with keywords.

From carol@example.org Wed Jan  8 12:00:00 2025
From: carol@example.org
Subject: third
X-Status: FT

No status line; flagged draft.
`

func TestImportMuttMbox(t *testing.T) {
	e := newEnv(t, Options{}, "alice")
	a := e.account("alice")
	p := filepath.Join(t.TempDir(), "saved.mbox")
	writeFile(t, p, muttMbox, time.Time{})
	st := importT(t, a, p, ImportOptions{Mailbox: "Saved", MboxFormat: "mboxo"})
	if st.Imported != 3 {
		t.Fatalf("stats %+v", st)
	}
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	local := func(y int, mo time.Month, d, h, mi, s int) int64 {
		return time.Date(y, mo, d, h, mi, s, 0, time.Local).Unix()
	}
	want := []msgInfo{
		{crlf("Return-Path: <alice@example.org>\nFrom: Alice <alice@example.org>\nSubject: first\nDate: Mon, 6 Jan 2025 10:00:00 +0000\nLines: 3\n\nHello.\nFrom the archives: quoted by mutt\nBye.\n"),
			`\Answered \Seen`, local(2025, 1, 6, 10, 0, 0)},
		{crlf("From: Bob <bob@example.org>\nSubject: second\nLines: 1\n\nUnread, with keywords.\n"),
			`$Label1 Work`, local(2025, 1, 7, 11, 22, 33)},
		{crlf("From: carol@example.org\nSubject: third\n\nNo status line; flagged draft.\n"),
			`\Draft \Flagged`, local(2025, 1, 8, 12, 0, 0)},
	}
	if got := snapshot(t, a)["Saved"]; !slices.Equal(got, want) {
		t.Fatalf("Saved = %+v\nwant %+v", got, want)
	}
	if st := importT(t, a, p, ImportOptions{Mailbox: "Saved", MboxFormat: "mboxo"}); st.Imported != 0 || st.Duplicates != 3 {
		t.Fatalf("re-import: %+v", st)
	}
}

// populate fills an account with messages that exercise the formats.
func populate(t *testing.T, a store.Account) {
	t.Helper()
	ctx := context.Background()
	for _, mb := range []string{"Work", "Work/Projects", "Entwürfe", "Archive/2024"} {
		if err := a.CreateMailbox(ctx, mb, ""); err != nil {
			t.Fatal(err)
		}
	}
	d := func(day int, h int) time.Time { return time.Date(2024, 5, day, h, 7, 9, 0, time.UTC) }
	add := func(mb string, body string, date time.Time, flags ...string) {
		t.Helper()
		_, err := a.Append(ctx, mb, []store.NewMessage{{Body: []byte(strings.ReplaceAll(body, "\n", "\r\n")), Flags: flags, InternalDate: date}})
		if err != nil {
			t.Fatal(err)
		}
	}
	add("INBOX", "Return-Path: <x@example.org>\nSubject: a\n\nFrom here on\n>From there\n>>From everywhere\n", d(3, 1), `\Seen`, "$Forwarded", "Work")
	add("INBOX", "Subject: b\n\nplain\n", d(1, 2)) // older date, later UID
	add("INBOX", "Subject: b\n\nplain\n", d(1, 2)) // an exact duplicate
	add("INBOX", "Subject: c\n\n", d(2, 3), `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, "$Junk")
	add("INBOX", "Subject: no body separator\n", d(4, 4), `\Seen`)
	add("Work", "Subject: w\nX-Status: not ours\n\nFrom: in body\n\n\nblank lines above\n", d(5, 5), "Urgent")
	add("Work/Projects", "Subject: p\n\np\n", d(6, 6))
	add("Entwürfe", "Subject: ü\nContent-Type: text/plain; charset=utf-8\n\nGrüße\n", d(7, 7), `\Draft`)
	add("Archive/2024", "Subject: old\n\nold\n", time.Date(2001, 9, 9, 1, 46, 40, 0, time.UTC), `\Seen`)
}

// TestExportImportRoundTrip: export to Maildir and to mbox, import into a
// fresh user, and get the same messages (bytes), flags and dates.
func TestExportImportRoundTrip(t *testing.T) {
	for _, format := range []string{"maildir", "mbox"} {
		t.Run(format, func(t *testing.T) {
			e := newEnv(t, Options{}, "alice", "bob")
			a := e.account("alice")
			populate(t, a)
			want := snapshot(t, a)
			dir := filepath.Join(t.TempDir(), "export")
			est, err := Export(context.Background(), a, dir, ExportOptions{Format: format})
			if err != nil {
				t.Fatal(err)
			}
			if est.Messages != 9 {
				t.Fatalf("exported %+v", est)
			}
			b := e.account("bob")
			ist := importT(t, b, dir, ImportOptions{})
			if ist.Imported != 9 {
				t.Fatalf("imported %+v", ist)
			}
			got := snapshot(t, b)
			if format == "mbox" {
				// mbox keeps flags in X-Status, so a message's own X-Status
				// header is read as flags: the documented mbox limitation.
				w := want["Work"][0]
				w.Body = strings.Replace(w.Body, "X-Status: not ours\r\n", "", 1)
				w.Flags = "Urgent"
				want["Work"] = []msgInfo{w}
			}
			for name, w := range want {
				if !slices.Equal(got[name], w) {
					t.Errorf("%s:\n got %+v\nwant %+v", name, got[name], w)
				}
			}
			for name := range got {
				if _, ok := want[name]; !ok && len(got[name]) > 0 {
					t.Errorf("extra mailbox %s", name)
				}
			}
			// Importing the export again changes nothing.
			if ist := importT(t, b, dir, ImportOptions{}); ist.Imported != 0 || ist.Duplicates != 9 {
				t.Fatalf("re-import: %+v", ist)
			}
		})
	}
}

func TestExportRefusesNonEmptyDir(t *testing.T) {
	e := newEnv(t, Options{}, "alice")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "x"), "x", time.Time{})
	if _, err := Export(context.Background(), e.account("alice"), dir, ExportOptions{}); err == nil {
		t.Fatal("exported into a non-empty directory")
	}
}

func TestReadMboxEdgeCases(t *testing.T) {
	var got []srcMessage
	collect := func(m srcMessage) error { got = append(got, m); return nil }
	// "From " inside a paragraph (no empty line before) is not a separator;
	// mboxrd unquoting removes exactly one '>'.
	in := "From a Mon Jan  6 10:00:00 2025\nSubject: x\n\nline\nFrom inside paragraph\n\n>>From deep\n\nFrom b Tue Jan  7 10:00:00 2025 +0200\nSubject: y\n\nz\n"
	if err := readMbox(strings.NewReader(in), false, collect); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d messages", len(got))
	}
	if string(got[0].body) != "Subject: x\r\n\r\nline\r\nFrom inside paragraph\r\n\r\n>From deep\r\n" {
		t.Fatalf("body 0 %q", got[0].body)
	}
	if !got[1].date.Equal(time.Date(2025, 1, 7, 10, 0, 0, 0, time.FixedZone("", 7200))) {
		t.Fatalf("date with zone: %v", got[1].date)
	}
	if d := parseFromLineDate(`From "a b"@example.org Sat Feb  1 09:08:07 2025`); !d.Equal(time.Date(2025, 2, 1, 9, 8, 7, 0, time.Local)) {
		t.Fatalf("quoted sender date: %v", d)
	}
}
