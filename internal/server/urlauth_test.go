package server_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/server"
)

// URLAUTH (RFC 4467) and URLAUTH=BINARY (RFC 5524), over TCP.

func urlauthServer(t *testing.T) *testServer {
	ts := newTestServer(t, serverOpts{mutate: func(c *server.Config) { c.SubmitUsers = []string{"submitserver"} }})
	for _, u := range []string{"alice", "bob", "carol", "submitserver"} {
		ts.addUser(u, "secret")
	}
	return ts
}

// genURL signs rump and returns the authorized URL.
func genURL(t *testing.T, c *client, rump string) string {
	t.Helper()
	u := c.ok(`GENURLAUTH "` + rump + `" INTERNAL`)
	if len(u) != 1 || !strings.HasPrefix(u[0], `* GENURLAUTH "`) {
		t.Fatalf("GENURLAUTH %s: %q", rump, u)
	}
	url, err := strconv.Unquote(strings.TrimPrefix(u[0], "* GENURLAUTH "))
	if err != nil {
		t.Fatalf("GENURLAUTH answer %q: %v", u[0], err)
	}
	if !strings.HasPrefix(url, rump+":internal:") {
		t.Fatalf("GENURLAUTH %s gave %s", rump, url)
	}
	return url
}

// urlFetch fetches url and returns what follows the URL in the answer
// ("NIL", "{n}\r\ndata", "(...)").
func urlFetch(t *testing.T, c *client, url string) string {
	t.Helper()
	return urlFetchRaw(t, c, `"`+url+`"`, url)
}

func urlFetchRaw(t *testing.T, c *client, arg, url string) string {
	t.Helper()
	u := c.ok("URLFETCH " + arg)
	if len(u) != 1 {
		t.Fatalf("URLFETCH %s: %q", arg, u)
	}
	// The URL comes back as an atom or a quoted string.
	for _, prefix := range []string{"* URLFETCH " + url + " ", `* URLFETCH "` + url + `" `} {
		if rest, ok := strings.CutPrefix(u[0], prefix); ok {
			return rest
		}
	}
	t.Fatalf("URLFETCH %s: %q", arg, u)
	return ""
}

func lit2(s string) string { return fmt.Sprintf("{%d}\r\n%s", len(s), s) }

const urlauthMsg = "From: joe@example.com\nSubject: pacem\nContent-Type: multipart/mixed; boundary=BB\n\n--BB\nContent-Type: text/plain\n\nintro\n--BB\nContent-Type: text/plain\n\nSi vis pacem, para bellum.\n--BB\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\naGVsbG8Ad29ybGQ=\n--BB--\n"

func TestURLAuthRFCExamples(t *testing.T) {
	ts := urlauthServer(t)
	joe := ts.login("alice", "secret")
	joe.appendMsg("INBOX", "", crlf(urlauthMsg))
	caps := joe.ok("CAPABILITY")
	if !strings.Contains(caps[0], " URLAUTH URLAUTH=BINARY") {
		t.Fatalf("capabilities: %q", caps)
	}
	// RFC 4467 §7: no access identifier, no owner user name: BAD.
	joe.expect(`GENURLAUTH "imap://alice@example.com/INBOX/;uid=1/;section=2" INTERNAL`, "BAD")
	joe.expect(`GENURLAUTH "imap://example.com/INBOX/;uid=1/;section=2;urlauth=submit+fred" INTERNAL`, "BAD")
	// Another user's key table, an unknown mailbox or mechanism: BAD.
	joe.expect(`GENURLAUTH "imap://bob@example.com/INBOX/;uid=1;urlauth=anonymous" INTERNAL`, "BAD")
	joe.expect(`GENURLAUTH "imap://alice@example.com/Nope/;uid=1;urlauth=anonymous" INTERNAL`, "BAD")
	joe.expect(`GENURLAUTH "imap://alice@example.com/INBOX/;uid=1;urlauth=anonymous" XSAMPLE`, "BAD")
	// Non-ASCII in a URL (they are %-encoded) is BAD, even where its lower
	// case is longer than itself.
	joe.expect("GENURLAUTH "+lit("imap://alice@example.com/"+strings.Repeat("\u023a", 20)+"/;uid=1;urlauth=authuser")+" INTERNAL", "BAD")
	joe.expect(`GENURLAUTH "imap://alice@example.com/INBOX/;uid=1;urlauth=anonymous:internal:0123456789abcdef0123456789abcdef" INTERNAL`, "BAD")

	// A UIDVALIDITY in the URL must be the mailbox's.
	uv := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(joe.ok("STATUS INBOX (UIDVALIDITY)")[0])[1]
	joe.expect(`GENURLAUTH "imap://alice@example.com/INBOX;UIDVALIDITY=1/;uid=1;urlauth=anonymous" INTERNAL`, "BAD")
	withUV := genURL(t, joe, "imap://alice@example.com/INBOX;UIDVALIDITY="+uv+"/;uid=1/;section=2;urlauth=anonymous")
	if got := urlFetch(t, joe, withUV); got != "{26}\r\nSi vis pacem, para bellum." {
		t.Fatalf("URLFETCH with UIDVALIDITY = %q", got)
	}

	url := genURL(t, joe, "imap://alice@example.com/INBOX/;uid=1/;section=2;urlauth=submit+fred")
	if !regexp.MustCompile(`:internal:01[0-9a-f]{64}$`).MatchString(url) {
		t.Fatalf("token form: %s", url)
	}
	// The same URL signed again gives the same token (one key per mailbox).
	if again := genURL(t, joe, "imap://alice@example.com/INBOX/;uid=1/;section=2;urlauth=submit+fred"); again != url {
		t.Fatalf("second GENURLAUTH %s != %s", again, url)
	}

	// The submit server fetches it (RFC 4467 §7's URLFETCH example).
	sub := ts.login("submitserver", "secret")
	if got, want := urlFetch(t, sub, url), "{26}\r\nSi vis pacem, para bellum."; got != want {
		t.Fatalf("URLFETCH = %q, want %q", got, want)
	}
	// Anyone else, joe included, gets NIL for a submit+ URL.
	if got := urlFetch(t, joe, url); got != "NIL" {
		t.Fatalf("URLFETCH by a non-submit user = %q", got)
	}

	// RESETKEY forms (RFC 4467 §7).
	joe.expect("RESETKEY INBOX XSAMPLE", "BAD")
	joe.expect("RESETKEY Nope", "NO [NONEXISTENT]")
	joe.expect("RESETKEY INBOX", "OK [URLMECH INTERNAL]")
	if got := urlFetch(t, sub, url); got != "NIL" {
		t.Fatalf("URLFETCH after RESETKEY INBOX = %q", got)
	}
	url = genURL(t, joe, "imap://alice@example.com/INBOX/;uid=1/;section=2;urlauth=submit+fred")
	if got := urlFetch(t, sub, url); !strings.HasPrefix(got, "{26}") {
		t.Fatalf("URLFETCH of the new URL = %q", got)
	}
	joe.expect("RESETKEY", "OK")
	if got := urlFetch(t, sub, url); got != "NIL" {
		t.Fatalf("URLFETCH after RESETKEY = %q", got)
	}
	// URLFETCH is also fine in the selected state and changes nothing
	// there: no \Seen.
	hasLine(t, joe.ok("SELECT INBOX"), "* OK [URLMECH INTERNAL] Ok")
	url = genURL(t, joe, "imap://alice@example.com/INBOX/;uid=1;urlauth=authuser")
	if got := urlFetch(t, joe, url); !strings.HasPrefix(got, "{") {
		t.Fatalf("URLFETCH whole message = %q", got)
	}
	hasLine(t, joe.ok("FETCH 1 FLAGS"), `* 1 FETCH (FLAGS (\Recent))`)
}

func TestURLAuthTwoUsers(t *testing.T) {
	ts := urlauthServer(t)
	alice := ts.login("alice", "secret")
	alice.appendMsg("INBOX", "", crlf(urlauthMsg))
	alice.appendMsg("INBOX", "", crlf("Subject: two\n\nsecond\n"))
	alice.ok("CREATE Work/Sub")
	alice.appendMsg("Work/Sub", "", crlf("Subject: sub\n\nin a sub folder\n"))
	bob := ts.login("bob", "secret")
	carol := ts.login("carol", "secret")

	authuser := genURL(t, alice, "imap://alice@h/INBOX/;uid=1/;section=2;urlauth=authuser")
	forBob := genURL(t, alice, "imap://alice@h/INBOX/;uid=1/;section=2;urlauth=user+bob")
	anon := genURL(t, alice, "imap://alice@h/INBOX/;uid=2;urlauth=anonymous")
	partial := genURL(t, alice, "imap://alice@h/INBOX/;uid=1/;section=2/;partial=3.4;urlauth=authuser")
	sub := genURL(t, alice, "imap://alice@h/Work%2FSub/;uid=1/;section=TEXT;urlauth=user+carol")
	subSlash := genURL(t, alice, "imap://alice@h/Work/Sub/;uid=1/;section=TEXT;urlauth=user+carol")
	const part2 = "{26}\r\nSi vis pacem, para bellum."
	for _, tc := range []struct {
		c          *client
		url, want  string
		who, label string
	}{
		{bob, authuser, part2, "bob", "authuser"},
		{carol, authuser, part2, "carol", "authuser"},
		{bob, forBob, part2, "bob", "user+bob"},
		{carol, forBob, "NIL", "carol", "user+bob"},
		{alice, forBob, "NIL", "alice", "user+bob"},
		{carol, anon, "{24}\r\nSubject: two\r\n\r\nsecond\r\n", "carol", "anonymous"},
		{bob, partial, "{4}\r\nvis ", "bob", "partial"},
		{carol, sub, "{17}\r\nin a sub folder\r\n", "carol", "user+carol in Work/Sub"},
		{carol, subSlash, "{17}\r\nin a sub folder\r\n", "carol", "user+carol in Work/Sub (separator unencoded)"},
		{bob, sub, "NIL", "bob", "user+carol in Work/Sub"},
	} {
		if got := urlFetch(t, tc.c, tc.url); got != tc.want {
			t.Errorf("%s fetching %s URL: %q, want %q", tc.who, tc.label, got, tc.want)
		}
	}

	// Tampering with any part of the URL, or its token, gives NIL.
	tok := authuser[len(authuser)-64:]
	flipped := authuser[:len(authuser)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", authuser[len(authuser)-1])+1)%16])
	for _, bad := range []string{
		flipped,
		strings.Replace(authuser, "section=2", "section=1", 1),
		strings.Replace(authuser, ";uid=1", ";uid=2", 1),
		strings.Replace(authuser, "urlauth=authuser", "urlauth=anonymous", 1),
		strings.Replace(authuser, "imap://alice@h/", "imap://alice@other/", 1),
		strings.Replace(authuser, "imap://alice@", "imap://bob@", 1),
		strings.Replace(authuser, ":internal:", ":xsample:", 1),
		strings.Replace(authuser, "/INBOX/", "/Work%2FSub/", 1),
		strings.Replace(authuser, "/INBOX/", "/Nope/", 1),
		strings.Replace(authuser, tok, strings.ToUpper(tok[:10])+tok[10:], 1)[:len(authuser)-2],
		"imap://nobody@h/INBOX/;uid=1/;section=2;urlauth=authuser:internal:" + authuser[len(authuser)-66:],
		"not a url",
	} {
		if got := urlFetch(t, bob, bad); got != "NIL" {
			t.Errorf("tampered URL %s fetched %q", bad, got)
		}
	}
	// Non-ASCII (URLs are %-encoded), some of whose lower case is longer
	// than itself: NIL, and the session goes on.
	for _, bad := range []string{
		strings.Replace(authuser, "/INBOX/", "/\u023a\u023a\u023a\u023a\u023a\u023a\u023a\u023a\u023a\u023a/", 1),
		"imap://alice@h/\u023a\u023a\u023a\u023a\u023a\u023a\u023a\u023a\u023a\u023a\u023a;URLAUTH=authuser:internal:" + tok,
		"imap://alice@h/INBOX/;uid=1;urlauth=user+b\u023a\u023a\u023a\u023a\u023a\u023a:internal:" + tok,
	} {
		if u := bob.ok(`URLFETCH "` + bad + `"`); len(u) != 1 || !strings.HasSuffix(u[0], " NIL") {
			t.Errorf("non-ASCII URL %s: %q", bad, u)
		}
	}
	// Upper-case hex is the same token.
	upper := authuser[:len(authuser)-64] + strings.ToUpper(tok)
	if got := urlFetch(t, bob, upper); got != part2 {
		t.Errorf("upper-case token: %q", got)
	}

	// Several URLs in one command: one response each, in order.
	u := bob.ok(`URLFETCH "` + authuser + `" "` + forBob + `" "non sense"`)
	if len(u) != 3 || !strings.HasSuffix(u[0], part2) || !strings.HasSuffix(u[1], part2) || u[2] != `* URLFETCH "non sense" NIL` {
		t.Fatalf("URLFETCH of three URLs: %q", u)
	}

	// Expiry: a URL that expired fetches as NIL, one in the future works.
	past := genURL(t, alice, "imap://alice@h/INBOX/;uid=2;expire=2001-01-01T00:00:00Z;urlauth=authuser")
	future := genURL(t, alice, "imap://alice@h/INBOX/;uid=2;EXPIRE="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+";urlauth=authuser")
	if got := urlFetch(t, bob, past); got != "NIL" {
		t.Errorf("expired URL: %q", got)
	}
	if got := urlFetch(t, bob, future); !strings.HasPrefix(got, "{24}") {
		t.Errorf("URL expiring in an hour: %q", got)
	}

	// An expunged message, a mailbox deleted (and created again) and a
	// reset key all answer NIL, and nothing else.
	alice.ok("SELECT INBOX")
	alice.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	alice.ok("EXPUNGE")
	if got := urlFetch(t, bob, anon); got != "NIL" {
		t.Errorf("URL of an expunged message: %q", got)
	}
	alice.ok("DELETE Work/Sub")
	alice.ok("CREATE Work/Sub")
	alice.appendMsg("Work/Sub", "", crlf("Subject: sub\n\nin a sub folder\n"))
	if got := urlFetch(t, carol, sub); got != "NIL" {
		t.Errorf("URL into a re-created mailbox: %q", got)
	}
	alice.ok("RESETKEY INBOX")
	for _, url := range []string{authuser, forBob, partial} {
		if got := urlFetch(t, bob, url); got != "NIL" {
			t.Errorf("URL after RESETKEY INBOX: %q", got)
		}
	}
}

// TestURLAuthSharedMailbox: a user may sign URLs for a mailbox shared
// with them, with a key of their own (not the owner's), and URLFETCH runs
// with that user's rights: once they lose the read right, their URLs
// fetch NIL. Nobody can pass a URL off under another user's name.
func TestURLAuthSharedMailbox(t *testing.T) {
	ts := urlauthServer(t)
	alice := ts.login("alice", "secret")
	alice.appendMsg("INBOX", "", crlf("Subject: secret\n\nalice only\n"))
	alice.ok("CREATE Private")
	alice.appendMsg("Private", "", crlf("Subject: p\n\nprivate\n"))
	alice.ok("SETACL INBOX bob lr")
	alice.ok("SETACL Private bob l") // visible, not readable
	bob := ts.login("bob", "secret")
	carol := ts.login("carol", "secret")

	shared := genURL(t, bob, "imap://bob@h/Other%20Users/alice/INBOX/;uid=1/;section=TEXT;urlauth=user+carol")
	if got := urlFetch(t, carol, shared); got != "{12}\r\nalice only\r\n" {
		t.Fatalf("carol fetching bob's URL to alice's INBOX: %q", got)
	}
	// bob's key for alice's INBOX is a server entry; it never shows in bob's METADATA.
	for _, l := range bob.ok(`GETMETADATA "" (DEPTH infinity) (/private)`) {
		if strings.Contains(l, "urlauth-key") {
			t.Fatalf("server METADATA shows a key: %q", l)
		}
	}
	// bob's key is bob's: the same path signed by alice differs, and
	// alice resetting her key does not touch bob's URL.
	own := genURL(t, alice, "imap://alice@h/INBOX/;uid=1/;section=TEXT;urlauth=user+carol")
	if own[strings.LastIndexByte(own, ':'):] == shared[strings.LastIndexByte(shared, ':'):] {
		t.Fatalf("bob and alice share a key: %s %s", own, shared)
	}
	alice.ok("RESETKEY INBOX")
	if got := urlFetch(t, carol, shared); !strings.HasPrefix(got, "{12}") {
		t.Fatalf("bob's URL after alice's RESETKEY: %q", got)
	}
	if got := urlFetch(t, carol, own); got != "NIL" {
		t.Fatalf("alice's URL after her RESETKEY: %q", got)
	}

	// Without the read right: no URL (BAD, as for a missing mailbox).
	bob.expect(`GENURLAUTH "imap://bob@h/Other%20Users/alice/Private/;uid=1;urlauth=anonymous" INTERNAL`, "BAD")
	bob.expect(`RESETKEY "Other Users/alice/Private"`, "NO [NONEXISTENT]")
	bob.expect(`GENURLAUTH "imap://alice@h/INBOX/;uid=1;urlauth=anonymous" INTERNAL`, "BAD")

	// bob loses the read right: his URL stops working.
	alice.ok("SETACL INBOX bob l")
	if got := urlFetch(t, carol, shared); got != "NIL" {
		t.Fatalf("bob's URL after he lost the read right: %q", got)
	}
	alice.ok("SETACL INBOX bob lr")
	if got := urlFetch(t, carol, shared); !strings.HasPrefix(got, "{12}") {
		t.Fatalf("bob's URL with the read right back: %q", got)
	}
	// bob's RESETKEY (all keys) revokes his shared-mailbox URLs too.
	bob.ok("RESETKEY")
	if got := urlFetch(t, carol, shared); got != "NIL" {
		t.Fatalf("bob's URL after his RESETKEY: %q", got)
	}

	// bob's own key signing a URL that names alice's mailbox is NIL.
	bob.appendMsg("INBOX", "", crlf("Subject: bob\n\nbob's\n"))
	mine := genURL(t, bob, "imap://bob@h/INBOX/;uid=1;urlauth=anonymous")
	forged := strings.Replace(mine, "imap://bob@", "imap://alice@", 1)
	if got := urlFetch(t, carol, forged); got != "NIL" {
		t.Fatalf("forged URL: %q", got)
	}
	if got := urlFetch(t, carol, mine); !strings.HasPrefix(got, "{") {
		t.Fatalf("bob's own URL: %q", got)
	}
}

func TestURLFetchBinary(t *testing.T) {
	ts := urlauthServer(t)
	alice := ts.login("alice", "secret")
	alice.appendMsg("INBOX", "", crlf(urlauthMsg))
	bob := ts.login("bob", "secret")
	whole := genURL(t, alice, "imap://alice@h/INBOX/;uid=1;urlauth=authuser")
	text := genURL(t, alice, "imap://alice@h/INBOX/;uid=1/;section=2;urlauth=authuser")
	bin := genURL(t, alice, "imap://alice@h/INBOX/;uid=1/;section=3;urlauth=authuser")
	header := genURL(t, alice, "imap://alice@h/INBOX/;uid=1/;section=HEADER;urlauth=authuser")
	missing := genURL(t, alice, "imap://alice@h/INBOX/;uid=1/;section=9;urlauth=authuser")

	// BODYPARTSTRUCTURE is what FETCH BODYSTRUCTURE says of that part.
	alice.ok("EXAMINE INBOX")
	bs := alice.ok("FETCH 1 BODYSTRUCTURE")[0]
	part3 := `("application" "octet-stream" NIL NIL NIL "base64" 16 NIL NIL NIL NIL)`
	if !strings.Contains(bs, part3) {
		t.Fatalf("BODYSTRUCTURE %s lacks %s", bs, part3)
	}
	wholeBS := strings.TrimSuffix(strings.TrimPrefix(bs, "* 1 FETCH (BODYSTRUCTURE "), ")")

	for _, tc := range []struct{ arg, url, want string }{
		{`("` + bin + `" BINARY)`, bin, "(BINARY ~{11}\r\nhello\x00world)"},
		{`("` + bin + `" BODY)`, bin, "(BODY {16}\r\naGVsbG8Ad29ybGQ=)"},
		{`("` + bin + `" BODYPARTSTRUCTURE)`, bin, "(BODYPARTSTRUCTURE " + part3 + ")"},
		{`("` + bin + `" binary bodypartstructure)`, bin, "(BODYPARTSTRUCTURE " + part3 + " BINARY ~{11}\r\nhello\x00world)"},
		{`("` + text + `" BINARY BODYPARTSTRUCTURE)`, text, `(BODYPARTSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 26 0 NIL NIL NIL NIL) BINARY {26}` + "\r\nSi vis pacem, para bellum.)"},
		{`("` + whole + `" BODYPARTSTRUCTURE)`, whole, "(BODYPARTSTRUCTURE " + wholeBS + ")"},
		{`("` + header + `" BODYPARTSTRUCTURE)`, header, "NIL"},
		{`("` + missing + `" BODYPARTSTRUCTURE)`, missing, "NIL"},
		{`("` + missing + `" BODY)`, missing, "(BODY {0}\r\n)"},
		{`("` + text + `")`, text, "()"},
		{`("` + text + `x" BINARY)`, text + "x", "NIL"},
	} {
		if got := urlFetchRaw(t, bob, tc.arg, tc.url); got != tc.want {
			t.Errorf("URLFETCH %s:\n got %q\nwant %q", tc.arg, got, tc.want)
		}
	}
	// A part whose transfer encoding is unknown: BINARY NIL, the rest as
	// usual.
	alice.appendMsg("INBOX", "", crlf("Subject: odd\nContent-Transfer-Encoding: x-odd\n\nstrange\n"))
	odd := genURL(t, alice, "imap://alice@h/INBOX/;uid=2/;section=1;urlauth=authuser")
	if got, want := urlFetchRaw(t, bob, `("`+odd+`" BODYPARTSTRUCTURE BINARY)`, odd),
		`(BODYPARTSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "x-odd" 9 1 NIL NIL NIL NIL) BINARY NIL)`; got != want {
		t.Errorf("BINARY of an unknown encoding: %q, want %q", got, want)
	}
	bob.expect(`URLFETCH ("`+bin+`" BODY BINARY)`, "BAD")
	bob.expect(`URLFETCH ("`+bin+`" BINARY XFOO)`, "BAD")
}

// TestURLAuthKeyHidden: the key lives in METADATA but no client can see,
// list or set it.
func TestURLAuthKeyHidden(t *testing.T) {
	ts := urlauthServer(t)
	alice := ts.login("alice", "secret")
	alice.appendMsg("INBOX", "", crlf("Subject: x\n\nbody\n"))
	alice.ok(`SETMETADATA INBOX (/private/comment "mine")`)
	url := genURL(t, alice, "imap://alice@h/INBOX/;uid=1;urlauth=authuser")
	for _, cmd := range []string{
		`GETMETADATA "INBOX" (DEPTH infinity) (/private)`,
		`GETMETADATA "INBOX" (DEPTH infinity) (/private/vendor)`,
		`GETMETADATA "INBOX" (DEPTH 1) (/private/vendor/tern)`,
		`LIST "" "INBOX" RETURN (METADATA (/private/vendor/tern/urlauth-key /private/comment))`,
	} {
		for _, l := range alice.ok(cmd) {
			if strings.Contains(strings.ToLower(l), "urlauth-key") && !strings.Contains(l, "urlauth-key NIL") {
				t.Errorf("%s shows the key: %q", cmd, l)
			}
		}
	}
	hasLine(t, alice.ok(`GETMETADATA "INBOX" (/private/vendor/tern/urlauth-key /private/comment)`),
		`* METADATA INBOX (/private/comment "mine" /private/vendor/tern/urlauth-key NIL)`)
	alice.expect(`SETMETADATA INBOX (/private/vendor/tern/urlauth-key "0123456789abcdef0123456789abcdef")`, "NO")
	alice.expect(`SETMETADATA INBOX (/PRIVATE/Vendor/Tern/URLAUTH-KEY NIL)`, "NO")
	alice.expect(`SETMETADATA INBOX (/private/vendor/tern/urlauth-key/x "1")`, "NO")
	bob := ts.login("bob", "secret")
	if got := urlFetch(t, bob, url); !strings.HasPrefix(got, "{") {
		t.Fatalf("URL after the refused SETMETADATA: %q", got)
	}
}

// TestCatenateURLAuth: APPEND CATENATE takes URLAUTH URLs, also for
// another user's message, checked as URLFETCH checks them.
func TestCatenateURLAuth(t *testing.T) {
	ts := urlauthServer(t)
	alice := ts.login("alice", "secret")
	alice.appendMsg("INBOX", "", crlf(urlauthMsg))
	forBob := genURL(t, alice, "imap://alice@h/INBOX/;uid=1/;section=2;urlauth=user+bob")
	bob := ts.login("bob", "secret")
	bob.ok(`APPEND INBOX CATENATE (TEXT ` + lit2("Subject: fwd\r\n\r\n") + ` URL "` + forBob + `")`)
	if got, want := fetchBody(t, bob, "INBOX", 1), "Subject: fwd\r\n\r\nSi vis pacem, para bellum."; got != want {
		t.Fatalf("catenated body %q, want %q", got, want)
	}
	carol := ts.login("carol", "secret")
	for _, c := range []*client{carol} {
		_, tagged := c.do(`APPEND INBOX CATENATE (TEXT ` + lit2("Subject: fwd\r\n\r\n") + ` URL "` + forBob + `")`)
		if !strings.HasPrefix(tagged, "NO [BADURL "+forBob+"]") {
			t.Fatalf("carol's CATENATE with bob's URL: %q", tagged)
		}
	}
	tampered := strings.Replace(forBob, "section=2", "section=1", 1)
	_, tagged := bob.do(`APPEND INBOX CATENATE (URL "` + tampered + `")`)
	if !strings.HasPrefix(tagged, "NO [BADURL") {
		t.Fatalf("tampered URL in CATENATE: %q", tagged)
	}
	if u := bob.ok("STATUS INBOX (MESSAGES)"); u[0] != "* STATUS INBOX (MESSAGES 1)" {
		t.Fatalf("failed CATENATEs stored mail: %q", u)
	}
}

// TestGenURLAuthConcurrent: sessions signing URLs for a mailbox without a
// key at the same moment agree on one key, so every URL they got works.
func TestGenURLAuthConcurrent(t *testing.T) {
	ts := urlauthServer(t)
	const boxes, sessions = 8, 4
	setup := ts.login("alice", "secret")
	for i := range boxes {
		setup.ok(fmt.Sprintf("CREATE b%d", i))
		setup.appendMsg(fmt.Sprintf("b%d", i), "", crlf("Subject: x\n\nbody\n"))
	}
	clients := make([]*client, sessions)
	for i := range clients {
		clients[i] = ts.login("alice", "secret")
	}
	// Each session pipelines one GENURLAUTH per mailbox, all sessions at
	// once, then reads its answers.
	for _, c := range clients {
		var b strings.Builder
		for i := range boxes {
			fmt.Fprintf(&b, "g%d GENURLAUTH \"imap://alice@h/b%d/;uid=1;urlauth=authuser\" INTERNAL\r\n", i, i)
		}
		go c.conn.Write([]byte(b.String()))
	}
	var urls []string
	for _, c := range clients {
		for i := range boxes {
			u, tagged := c.readUntil(fmt.Sprintf("g%d", i))
			if !strings.HasPrefix(tagged, "OK") || len(u) != 1 {
				t.Fatalf("GENURLAUTH: %q %q", u, tagged)
			}
			url, err := strconv.Unquote(strings.TrimPrefix(u[0], "* GENURLAUTH "))
			if err != nil {
				t.Fatal(err)
			}
			urls = append(urls, url)
		}
	}
	bob := ts.login("bob", "secret")
	for _, url := range urls {
		if got := urlFetch(t, bob, url); !strings.HasPrefix(got, "{") {
			t.Errorf("URL from a concurrent GENURLAUTH does not work: %s -> %q", url, got)
		}
	}
}

// RESETKEY reaches the user's other sessions that have the mailbox
// selected with an untagged URLMECH (RFC 4467 §7), once, at their next
// command or at once in IDLE; sessions of other mailboxes or users, and
// the resetting session itself (tagged OK [URLMECH]), hear nothing.
func TestResetKeyTellsOtherSessions(t *testing.T) {
	ts := urlauthServer(t)
	a := ts.login("alice", "secret")
	b := ts.login("alice", "secret")
	other := ts.login("alice", "secret")
	bob := ts.login("bob", "secret")
	a.ok("CREATE Work")
	a.ok("SETACL INBOX bob lr")
	a.ok("SELECT INBOX")
	other.ok("SELECT Work")
	bob.ok(`SELECT "Other Users/alice/INBOX"`)

	b.expect("RESETKEY INBOX", "OK [URLMECH INTERNAL]")
	if u := a.ok("NOOP"); len(u) != 1 || u[0] != "* OK [URLMECH INTERNAL] Access key reset" {
		t.Fatalf("after RESETKEY INBOX elsewhere: %q", u)
	}
	a.quiet()
	other.quiet()
	bob.quiet()

	a.write("I1 IDLE\r\n")
	if l := a.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("idle: %q", l)
	}
	b.expect("RESETKEY INBOX", "OK [URLMECH INTERNAL]")
	if l := a.readLine(); l != "* OK [URLMECH INTERNAL] Access key reset" {
		t.Fatalf("in IDLE: %q", l)
	}
	a.write("DONE\r\n")
	if l := a.readLine(); l != "I1 OK IDLE completed" {
		t.Fatalf("done: %q", l)
	}

	// RESETKEY without a mailbox concerns every selected session of the
	// user, but not the one that sent it.
	a.ok("RESETKEY")
	if u := other.ok("NOOP"); len(u) != 1 || u[0] != "* OK [URLMECH INTERNAL] Access key reset" {
		t.Fatalf("after RESETKEY elsewhere: %q", u)
	}
	a.quiet()
	bob.quiet()
}
