package e2e_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// pythonScript uses imaplib as a script author would. It prints one
// JSON object of observations on stdout; the Go side asserts on them and
// on the mailbox state seen by an independent client.
const pythonScript = `
import base64, imaplib, json, re, socket, ssl, sys

host, imaps_port, imap_port, cafile, user, pw, m1, m2, m3, m4 = sys.argv[1:11]
msgs = [open(p, 'rb').read() for p in (m1, m2, m3, m4)]
ctx = ssl.create_default_context(cafile=cafile)
out = {}

def ok(res, what):
    typ, data = res
    if typ != 'OK':
        raise SystemExit('%s failed: %s %r' % (what, typ, data))
    return data

# STARTTLS on the plain port: no login before TLS, then login works.
p = imaplib.IMAP4(host, int(imap_port), timeout=10)
out['plain_caps'] = sorted(p.capabilities)
try:
    p.login(user, pw)
    out['plain_login'] = 'accepted'
except imaplib.IMAP4.error as e:
    out['plain_login'] = 'refused: %s' % e
ok(p.starttls(ssl_context=ctx), 'starttls')
ok(p.login(user, pw), 'login after starttls')
out['starttls_caps'] = sorted(p.capabilities)
ok(p.noop(), 'noop')
p.logout()

a = imaplib.IMAP4_SSL(host, int(imaps_port), ssl_context=ctx, timeout=10)
ok(a.login(user, pw), 'login')
names = []
for line in ok(a.list(), 'list'):
    m = re.match(rb'\((.*?)\) (NIL|"[^"]*") (.*)$', line)
    names.append(m.group(3).decode().strip('"'))
out['list'] = sorted(names)
ok(a.create('"Py Work"'), 'create')

date = imaplib.Time2Internaldate(1772528400)  # 2026-03-03 09:00:00 UTC
appended = []
for i, flags in ((0, r'(\Flagged)'), (1, None), (2, None)):
    data = ok(a.append('INBOX', flags, date, msgs[i]), 'append %d' % i)
    m = re.search(rb'APPENDUID (\d+) (\d+)', data[0])
    appended.append(int(m.group(2)))
out['appended_uids'] = appended

out['exists'] = int(ok(a.select('INBOX'), 'select')[0])
fetched = {}
data = ok(a.uid('FETCH', '1:*', '(UID FLAGS INTERNALDATE BODY.PEEK[])'), 'uid fetch')
for item in data:
    if not isinstance(item, tuple):
        continue
    meta, body = item
    uid = int(re.search(rb'UID (\d+)', meta).group(1))
    flags = re.search(rb'FLAGS \(([^)]*)\)', meta).group(1).decode().split()
    idate = re.search(rb'INTERNALDATE "([^"]*)"', meta).group(1).decode()
    fetched[str(uid)] = {'flags': sorted(flags), 'date': idate, 'body': base64.b64encode(body).decode()}
out['fetched'] = fetched

out['search_subject'] = ok(a.search(None, 'SUBJECT', '"py two"'), 'search')[0].decode().split()
out['uid_search_flagged'] = ok(a.uid('SEARCH', 'FLAGGED'), 'uid search')[0].decode().split()
out['search_unseen'] = ok(a.search(None, 'UNSEEN'), 'search unseen')[0].decode().split()

u1, u2, u3 = appended
ok(a.uid('STORE', str(u2), '+FLAGS', r'(\Seen $Work)'), 'store')
ok(a.uid('COPY', str(u1), 'Archive'), 'copy')
ok(a.uid('MOVE', str(u3), '"Py Work"'), 'move')
ok(a.uid('STORE', str(u1), '+FLAGS.SILENT', r'(\Deleted)'), 'store deleted')
out['expunged'] = [x.decode() for x in ok(a.expunge(), 'expunge') if x]

# IDLE by hand (imaplib before 3.14 has no idle()): a second connection
# appends, the idling one must see EXISTS.
tag = a._new_tag()
a.send(tag + b' IDLE\r\n')
cont = a.readline()
out['idle_cont'] = cont.decode().strip()
b = imaplib.IMAP4_SSL(host, int(imaps_port), ssl_context=ctx, timeout=10)
ok(b.login(user, pw), 'login b')
ok(b.append('INBOX', None, None, msgs[3]), 'append during idle')
b.logout()
seen = []
while True:
    line = a.readline().decode().strip()
    seen.append(line)
    if line.endswith('EXISTS'):
        break
a.send(b'DONE\r\n')
while True:
    line = a.readline().decode().strip()
    if line.startswith(tag.decode() + ' '):
        out['idle_done'] = line
        break
    seen.append(line)
out['idle_untagged'] = seen
ok(a.close(), 'close')

# More of the protocol, as scripts commonly use it.
st = ok(a.status('INBOX', '(MESSAGES UNSEEN UIDNEXT)'), 'status')[0].decode()
out['status'] = st
ok(a.select('INBOX'), 'select again')
data = ok(a.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[]<0.10> RFC822.SIZE ENVELOPE BODYSTRUCTURE)'), 'fetch parts')
parts = [x for x in data if isinstance(x, tuple)]
out['fetch_parts'] = [[m.decode(errors='replace'), v.decode(errors='replace')] for m, v in parts]
out['fetch_tail'] = [x.decode(errors='replace') for x in data if isinstance(x, bytes)]
a.literal = 'Köln'.encode('utf-8')
out['search_utf8'] = ok(a.search('UTF-8', 'BODY'), 'search utf-8 literal')[0].decode().split()
ok(a.create('Scratch'), 'create scratch')
ok(a.rename('Scratch', '"Scratch Renamed"'), 'rename')
ok(a.subscribe('"Scratch Renamed"'), 'subscribe')
out['lsub'] = [x.decode() for x in ok(a.lsub('""', '"Scratch*"'), 'lsub') if x]
ok(a.delete('"Scratch Renamed"'), 'delete')
out['list_after_delete'] = [x.decode() for x in ok(a.list('""', '"Scratch*"'), 'list after delete') if x]
out['namespace'] = ok(a.namespace(), 'namespace')[0].decode()
a.logout()
print(json.dumps(out))
`

type pythonResult struct {
	PlainCaps    []string `json:"plain_caps"`
	PlainLogin   string   `json:"plain_login"`
	StartTLSCaps []string `json:"starttls_caps"`
	List         []string `json:"list"`
	AppendedUIDs []uint32 `json:"appended_uids"`
	Exists       int      `json:"exists"`
	Fetched      map[string]struct {
		Flags []string `json:"flags"`
		Date  string   `json:"date"`
		Body  string   `json:"body"`
	} `json:"fetched"`
	SearchSubject    []string    `json:"search_subject"`
	UIDSearchFlagged []string    `json:"uid_search_flagged"`
	SearchUnseen     []string    `json:"search_unseen"`
	Expunged         []string    `json:"expunged"`
	IdleCont         string      `json:"idle_cont"`
	IdleUntagged     []string    `json:"idle_untagged"`
	IdleDone         string      `json:"idle_done"`
	Status           string      `json:"status"`
	FetchParts       [][2]string `json:"fetch_parts"`
	FetchTail        []string    `json:"fetch_tail"`
	SearchUTF8       []string    `json:"search_utf8"`
	LSub             []string    `json:"lsub"`
	ListAfterDelete  []string    `json:"list_after_delete"`
	Namespace        string      `json:"namespace"`
}

func testPython(t *testing.T, srv *server) {
	py := need(t, "python3")
	const user, pass = "py", "py-secret"
	tmp := t.TempDir()
	script := filepath.Join(tmp, "client.py")
	if err := os.WriteFile(script, []byte(pythonScript), 0o600); err != nil {
		t.Fatal(err)
	}
	msgs := [][]byte{
		testMessage("Bob <bob@example.org>", "py one", 1),
		testMessage("Carol <carol@example.org>", "py two", 2),
		testMessage("Dave <dave@example.org>", "py three", 3),
		[]byte("From: Erin <erin@example.org>\r\nTo: alice@example.org\r\nSubject: py four\r\n" +
			"Date: Tue, 03 Mar 2026 10:04:00 +0100\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
			"Grüße aus Köln.\r\n"),
	}
	args := []string{script, "localhost", srv.imapsPort, srv.imapPort, srv.certFile, user, pass}
	for i, m := range msgs {
		p := filepath.Join(tmp, fmt.Sprintf("m%d.eml", i+1))
		if err := os.WriteFile(p, m, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	out := run(t, nil, tmp, py, args...)
	var r pythonResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("script output is not JSON (%v):\n%s", err, out)
	}

	// STARTTLS: the plain port must not take a password before TLS.
	if !slices.Contains(r.PlainCaps, "STARTTLS") || !slices.Contains(r.PlainCaps, "LOGINDISABLED") {
		t.Errorf("plain capabilities %v: want STARTTLS and LOGINDISABLED", r.PlainCaps)
	}
	if !strings.HasPrefix(r.PlainLogin, "refused") {
		t.Errorf("LOGIN before STARTTLS: %s, want refused", r.PlainLogin)
	}
	if slices.Contains(r.StartTLSCaps, "STARTTLS") || !slices.Contains(r.StartTLSCaps, "IMAP4REV2") {
		t.Errorf("capabilities after STARTTLS+LOGIN %v: want IMAP4rev2, no STARTTLS", r.StartTLSCaps)
	}

	for _, name := range []string{"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"} {
		if !slices.Contains(r.List, name) {
			t.Errorf("LIST %v lacks %s", r.List, name)
		}
	}
	if len(r.AppendedUIDs) != 3 || r.Exists != 3 {
		t.Fatalf("appended UIDs %v, SELECT EXISTS %d: want 3 and 3", r.AppendedUIDs, r.Exists)
	}
	for i, uid := range r.AppendedUIDs {
		f, ok := r.Fetched[fmt.Sprint(uid)]
		if !ok {
			t.Errorf("UID FETCH did not return UID %d: %v", uid, r.Fetched)
			continue
		}
		body, _ := base64.StdEncoding.DecodeString(f.Body)
		if !bytes.Equal(body, msgs[i]) {
			t.Errorf("UID %d body %q, want %q", uid, body, msgs[i])
		}
		if d, err := time.Parse("_2-Jan-2006 15:04:05 -0700", f.Date); err != nil || !d.Equal(time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC)) {
			t.Errorf("UID %d INTERNALDATE %q, want the APPEND date 2026-03-03 09:00 UTC", uid, f.Date)
		}
		wantFlags := []string{}
		if i == 0 {
			wantFlags = []string{"\\Flagged"}
		}
		got := slices.DeleteFunc(slices.Clone(f.Flags), func(s string) bool { return s == "\\Recent" })
		if !slices.Equal(got, wantFlags) {
			t.Errorf("UID %d flags %v, want %v", uid, f.Flags, wantFlags)
		}
	}
	if !slices.Equal(r.SearchSubject, []string{"2"}) {
		t.Errorf("SEARCH SUBJECT \"py two\" = %v, want [2]", r.SearchSubject)
	}
	if !slices.Equal(r.UIDSearchFlagged, []string{fmt.Sprint(r.AppendedUIDs[0])}) {
		t.Errorf("UID SEARCH FLAGGED = %v, want [%d]", r.UIDSearchFlagged, r.AppendedUIDs[0])
	}
	if !slices.Equal(r.SearchUnseen, []string{"1", "2", "3"}) {
		t.Errorf("SEARCH UNSEEN = %v, want [1 2 3]", r.SearchUnseen)
	}
	// imaplib collects untagged EXPUNGEs until read: UID MOVE of the
	// third message sent "* 3 EXPUNGE", then EXPUNGE removed the first.
	if !slices.Equal(r.Expunged, []string{"3", "1"}) {
		t.Errorf("EXPUNGE responses %v, want [3 1]", r.Expunged)
	}
	if !strings.HasPrefix(r.IdleCont, "+") {
		t.Errorf("IDLE continuation %q", r.IdleCont)
	}
	if !slices.Contains(r.IdleUntagged, "* 2 EXISTS") {
		t.Errorf("during IDLE saw %v, want '* 2 EXISTS'", r.IdleUntagged)
	}
	if !strings.Contains(r.IdleDone, " OK") {
		t.Errorf("IDLE ended with %q", r.IdleDone)
	}

	// STATUS after the session: INBOX holds two and four, two is \Seen.
	if !strings.Contains(r.Status, "MESSAGES 2") || !strings.Contains(r.Status, "UNSEEN 1") ||
		!strings.Contains(r.Status, fmt.Sprintf("UIDNEXT %d", r.AppendedUIDs[2]+2)) {
		t.Errorf("STATUS INBOX = %q, want MESSAGES 2, UNSEEN 1, UIDNEXT %d", r.Status, r.AppendedUIDs[2]+2)
	}
	// One FETCH for several items: imaplib yields one tuple per literal.
	if len(r.FetchParts) != 2 {
		t.Errorf("FETCH with two literals gave %d parts: %q %q", len(r.FetchParts), r.FetchParts, r.FetchTail)
	} else {
		if !strings.Contains(r.FetchParts[0][0], "BODY[HEADER.FIELDS (SUBJECT)]") || r.FetchParts[0][1] != "Subject: py two\r\n\r\n" {
			t.Errorf("HEADER.FIELDS (SUBJECT) = %q", r.FetchParts[0])
		}
		if !strings.Contains(r.FetchParts[1][0], "BODY[]<0>") || r.FetchParts[1][1] != string(msgs[1][:10]) {
			t.Errorf("BODY[]<0.10> = %q, want %q", r.FetchParts[1], msgs[1][:10])
		}
		all := strings.Join(append([]string{r.FetchParts[0][0], r.FetchParts[1][0]}, r.FetchTail...), "")
		for _, want := range []string{fmt.Sprintf("RFC822.SIZE %d", len(msgs[1])), `"py two"`, `(("Carol" NIL "carol" "example.org"))`,
			fmt.Sprintf(`("text" "plain" ("charset" "utf-8") NIL NIL "7bit" %d 2 NIL NIL NIL NIL)`, len(msgs[1])-bytes.Index(msgs[1], []byte("\r\n\r\n"))-4)} {
			if !strings.Contains(all, want) {
				t.Errorf("FETCH response lacks %s:\n%s", want, all)
			}
		}
	}
	if !slices.Equal(r.SearchUTF8, []string{"2"}) {
		t.Errorf("SEARCH CHARSET UTF-8 BODY Köln = %v, want [2] (message four, 8-bit UTF-8 body)", r.SearchUTF8)
	}
	if len(r.LSub) != 1 || !strings.Contains(r.LSub[0], `"Scratch Renamed"`) {
		t.Errorf("LSUB after RENAME+SUBSCRIBE = %q, want the renamed mailbox", r.LSub)
	}
	if len(r.ListAfterDelete) != 0 {
		t.Errorf("LIST after DELETE = %q, want nothing", r.ListAfterDelete)
	}
	if !strings.HasPrefix(r.Namespace, `(("" "`) {
		t.Errorf("NAMESPACE = %q, want a personal namespace with an empty prefix", r.Namespace)
	}

	// The end state, through an independent client.
	c := srv.client(t, user, pass)
	inbox := mailboxContents(t, c, "INBOX")
	if len(inbox) != 2 {
		t.Fatalf("INBOX has %d messages, want 2: %+v", len(inbox), inbox)
	}
	if !bytes.Equal(inbox[0].Body, msgs[1]) || !slices.Equal(inbox[0].Flags, []string{"$Work", "\\Seen"}) {
		t.Errorf("INBOX[0] = %q flags %v, want message two with $Work \\Seen", inbox[0].Body, inbox[0].Flags)
	}
	if !bytes.Equal(inbox[1].Body, msgs[3]) || len(inbox[1].Flags) != 0 {
		t.Errorf("INBOX[1] = %q flags %v, want message four unflagged", inbox[1].Body, inbox[1].Flags)
	}
	archive := mailboxContents(t, c, "Archive")
	if len(archive) != 1 || !bytes.Equal(archive[0].Body, msgs[0]) || !slices.Equal(archive[0].Flags, []string{"\\Flagged"}) {
		t.Errorf("Archive = %+v, want message one copied with \\Flagged", archive)
	}
	work := mailboxContents(t, c, "Py Work")
	if len(work) != 1 || !bytes.Equal(work[0].Body, msgs[2]) {
		t.Errorf("Py Work = %+v, want message three (moved)", work)
	}
}
