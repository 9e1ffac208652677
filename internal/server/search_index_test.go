package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/server"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/postgres"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

// TestSearchIndexDifferential: SEARCH answered from the full-text index
// equals SEARCH answered by reading every message, for random messages
// (charsets, transfer encodings, HTML, nested multiparts, RFC 2047
// headers, embedded messages) and random keys (substrings within and
// across words, non-ASCII, 1-2 character terms, NOT, OR, with flags and
// UID sets), over real TCP against two servers on the same data: one
// with the index, one told to scan. It compares with nothing indexed,
// everything indexed, and a mix (new mail queued, copies, expunges).
func TestSearchIndexDifferential(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 11))
	dir := t.TempDir()
	open, indexNow := sharedTextStore(t, dir)
	idx := newTestServer(t, serverOpts{dataDir: dir, noTextIndexer: true, openStore: open})
	idx.addUser("alice", "secret")
	scan := newTestServer(t, serverOpts{dataDir: dir, noTextIndexer: true, openStore: open, mutate: func(c *server.Config) { c.ScanSearch = true }})
	ctx := context.Background()
	g := &diffGen{r: r}
	appendRandom := func(n int) {
		acct, err := idx.store.Account(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		defer acct.Close()
		for range n {
			var flags []string
			if r.IntN(2) == 0 {
				flags = []string{`\Seen`}
			}
			if _, err := acct.Append(ctx, "INBOX", []store.NewMessage{{Body: g.message(), Flags: flags}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	drain := func() { indexNow("alice") }
	ci, cs := idx.login("alice", "secret"), scan.login("alice", "secret")
	compare := func(phase string, n int) {
		ci.ok("SELECT INBOX")
		cs.ok("SELECT INBOX")
		for range n {
			key := g.key(2)
			cmd := "UID SEARCH CHARSET UTF-8 " + key
			ui, ti := ci.do(cmd)
			us, tsc := cs.do(cmd)
			if !strings.HasPrefix(ti, "OK") || !strings.HasPrefix(tsc, "OK") {
				t.Fatalf("%s: %q: index %q, scan %q", phase, cmd, ti, tsc)
			}
			if a, b := searchLine(ui), searchLine(us); a != b {
				t.Fatalf("%s (seed %d): %q\nindex: %s\nscan:  %s", phase, seed, cmd, a, b)
			}
			// FUZZY (RFC 6203): the same matches and relevancy scores.
			cmd = "UID SEARCH RETURN (ALL RELEVANCY) CHARSET UTF-8 " + g.fuzzyKey()
			ui, ti = ci.do(cmd)
			us, tsc = cs.do(cmd)
			if !strings.HasPrefix(ti, "OK") || !strings.HasPrefix(tsc, "OK") {
				t.Fatalf("%s: %q: index %q, scan %q", phase, cmd, ti, tsc)
			}
			if a, b := esearchData(ui), esearchData(us); a != b {
				t.Fatalf("%s (seed %d): %q\nindex: %s\nscan:  %s", phase, seed, cmd, a, b)
			}
		}
	}
	appendRandom(40)
	compare("nothing indexed", 60)
	drain()
	compare("all indexed", 400)
	appendRandom(20)
	ci.ok("SELECT INBOX")
	ci.ok("UID COPY 1:10 INBOX")
	ci.ok("UID STORE 11:15 +FLAGS.SILENT (\\Deleted)")
	ci.ok("EXPUNGE")
	compare("new mail queued", 200)
	drain()
	compare("indexed again", 200)
}

// searchLine is the SEARCH response among untagged lines.
func searchLine(lines []string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, "* SEARCH") {
			return l
		}
	}
	return "(none)"
}

// esearchData is the ESEARCH response among untagged lines without its
// tag correlator.
func esearchData(lines []string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, "* ESEARCH (TAG ") {
			if i := strings.Index(l, ")"); i > 0 {
				return l[i+1:]
			}
		}
	}
	return "(none)"
}

// diffGen makes random messages and search keys; pieces collects the
// text the messages contain, the source of needles.
type diffGen struct {
	r      *rand.Rand
	pieces []string
	n      int
}

var diffWords = strings.Fields(`alpha beta gamma delta report budget straße café naïve über résumé
	Œuvre ÉCOLE Ärger Жизнь Москва 日本語 テスト ǅemal ﬁle İstanbul σίσυφος ΣΊΣΥΦΟΣ wörter
	xylophone quux foo-bar C++ 100% a b c`)

func (g *diffGen) words(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(diffWords[g.r.IntN(len(diffWords))])
	}
	s := b.String()
	g.pieces = append(g.pieces, s)
	return s
}

// charsetFor picks a charset that can encode s, and returns s encoded.
func (g *diffGen) charsetFor(s string) (string, []byte) {
	cands := []struct {
		name string
		enc  encoding.Encoding
	}{{"iso-8859-1", charmap.ISO8859_1}, {"windows-1252", charmap.Windows1252}, {"koi8-r", charmap.KOI8R}, {"iso-8859-7", charmap.ISO8859_7}}
	if g.r.IntN(3) > 0 {
		c := cands[g.r.IntN(len(cands))]
		if b, err := c.enc.NewEncoder().Bytes([]byte(s)); err == nil {
			return c.name, b
		}
	}
	return "utf-8", []byte(s)
}

func (g *diffGen) encodeBody(data []byte) (string, string) {
	switch g.r.IntN(3) {
	case 0:
		var b bytes.Buffer
		w := quotedprintable.NewWriter(&b)
		w.Write(data)
		w.Close()
		return "quoted-printable", strings.ReplaceAll(strings.ReplaceAll(b.String(), "\r\n", "\n"), "\n", "\r\n")
	case 1:
		s := base64.StdEncoding.EncodeToString(data)
		var b strings.Builder
		for len(s) > 76 {
			b.WriteString(s[:76] + "\r\n")
			s = s[76:]
		}
		b.WriteString(s)
		return "base64", b.String()
	}
	return "8bit", string(data)
}

func (g *diffGen) textPart(html bool) string {
	text := g.words(3+g.r.IntN(12)) + "\n" + g.words(2+g.r.IntN(6))
	sub := "plain"
	if html {
		sub = "html"
		text = "<html><head><style>p{}</style></head><body><p>" + g.words(3) + " <b>" + g.words(1) + "</b>" +
			g.words(1) + " &amp; &eacute;t&eacute; &#1046; &lt;tag&gt;</p><script>" + g.words(2) + "</script>" + text + "</body></html>"
	}
	cs, data := g.charsetFor(text)
	cte, body := g.encodeBody(data)
	return "Content-Type: text/" + sub + "; charset=" + cs + "\r\nContent-Transfer-Encoding: " + cte + "\r\n\r\n" + body + "\r\n"
}

func (g *diffGen) headerWord(s string) string {
	switch g.r.IntN(3) {
	case 0:
		return mime.BEncoding.Encode("utf-8", s)
	case 1:
		return mime.QEncoding.Encode("utf-8", s)
	}
	return s
}

func (g *diffGen) addr() string {
	local := []string{"bob", "carol.smith", "zoë", "x"}[g.r.IntN(4)]
	if !utf8.ValidString(local) || strings.ContainsRune(local, 'ë') {
		local = "zoe"
	}
	a := local + "@" + []string{"example.org", "mail.example", "beispiel.de"}[g.r.IntN(3)]
	g.pieces = append(g.pieces, a)
	switch g.r.IntN(3) {
	case 0:
		return a
	case 1:
		return g.headerWord(g.words(2)) + " <" + a + ">"
	}
	return `"` + g.words(1) + `" <` + a + "> (" + g.words(1) + ")"
}

func (g *diffGen) body(depth int) string {
	switch k := g.r.IntN(6); {
	case depth > 2 || k < 2:
		return g.textPart(k == 1)
	case k == 2:
		return g.multipart("alternative", []string{g.textPart(false), g.textPart(true)})
	case k == 3:
		att := "Content-Type: application/octet-stream; name=\"" + g.words(1) + ".bin\"\r\nContent-Disposition: attachment; filename=\"" +
			g.words(1) + ".pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString([]byte(g.words(3))) + "\r\n"
		return g.multipart("mixed", []string{g.body(depth + 1), att})
	case k == 4:
		return "Content-Type: message/rfc822\r\n\r\n" + g.headers() + g.body(depth+1)
	}
	return g.multipart("mixed", []string{g.body(depth + 1), g.body(depth + 1)})
}

func (g *diffGen) multipart(sub string, parts []string) string {
	g.n++
	bound := fmt.Sprintf("b%d-%d", g.n, g.r.IntN(1000))
	var b strings.Builder
	b.WriteString("Content-Type: multipart/" + sub + "; boundary=" + bound + "\r\n\r\npreamble\r\n")
	for _, p := range parts {
		b.WriteString("--" + bound + "\r\n" + p)
	}
	b.WriteString("--" + bound + "--\r\n")
	return b.String()
}

func (g *diffGen) headers() string {
	h := "From: " + g.addr() + "\r\nTo: " + g.addr() + ", " + g.addr() + "\r\n"
	if g.r.IntN(2) == 0 {
		h += "Cc: " + g.addr() + "\r\n"
	}
	if g.r.IntN(3) == 0 {
		h += "Bcc: " + g.addr() + "\r\n"
	}
	h += "Subject: " + g.headerWord(g.words(1+g.r.IntN(4))) + "\r\n"
	if g.r.IntN(2) == 0 {
		h += "X-Tag: " + g.words(2) + "\r\n"
	}
	h += "Date: Mon, 1 Dec 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
	return h
}

func (g *diffGen) message() []byte {
	return []byte(g.headers() + g.body(0))
}

// needle is a random substring of text the messages hold (maybe with its
// case changed), or a miss.
func (g *diffGen) needle() string {
	if g.r.IntN(12) == 0 || len(g.pieces) == 0 {
		return []string{"zzqx", "q", "ß", "日", "@", "   ", ""}[g.r.IntN(7)]
	}
	if g.r.IntN(4) == 0 {
		// A whole word (the word index may prove it), maybe with the
		// character after it.
		piece := g.pieces[g.r.IntN(len(g.pieces))]
		words := strings.Fields(piece)
		w := words[g.r.IntN(len(words))]
		if i := strings.Index(piece, w) + len(w); i < len(piece) && g.r.IntN(3) == 0 {
			_, n := utf8.DecodeRuneInString(piece[i:])
			w = piece[i-len(w) : i+n]
		}
		return w
	}
	runes := []rune(g.pieces[g.r.IntN(len(g.pieces))])
	start := g.r.IntN(len(runes))
	n := 1 + g.r.IntN(min(12, len(runes)-start))
	s := string(runes[start : start+n])
	switch g.r.IntN(4) {
	case 0:
		s = strings.ToUpper(s)
	case 1:
		s = strings.ToLower(s)
	}
	return s
}

// fuzzyNeedle is one or two pieces of the messages' text, each maybe
// with a character changed or dropped (a typo), or a miss.
func (g *diffGen) fuzzyNeedle() string {
	if g.r.IntN(10) == 0 || len(g.pieces) == 0 {
		return []string{"zzqx wvvk", "a", "日本", "   "}[g.r.IntN(4)]
	}
	var words []string
	for range 1 + g.r.IntN(2) {
		w := []rune(g.pieces[g.r.IntN(len(g.pieces))])
		if len(w) > 3 {
			i := g.r.IntN(len(w))
			switch g.r.IntN(3) {
			case 0:
				w = append(w[:i:i], w[i+1:]...)
			case 1:
				w[i] = 'x'
			}
		}
		words = append(words, string(w))
	}
	return strings.Join(words, " ")
}

// fuzzyKey is a random key with a FUZZY text key in it.
func (g *diffGen) fuzzyKey() string {
	op := []string{"BODY", "TEXT", "SUBJECT", "FROM", "TO", "HEADER X-Tag"}[g.r.IntN(6)]
	k := "FUZZY " + op + " " + literal(g.fuzzyNeedle())
	switch g.r.IntN(4) {
	case 0:
		return "FUZZY (" + op + " " + literal(g.fuzzyNeedle()) + " " + g.key(1) + ")"
	case 1:
		return "OR " + k + " " + g.key(1)
	case 2:
		return k + " NOT " + g.key(0)
	}
	return k
}

// literal is s as an IMAP non-synchronizing literal.
func literal(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }

func (g *diffGen) key(depth int) string {
	if depth > 0 {
		switch g.r.IntN(6) {
		case 0:
			return "NOT " + g.key(depth-1)
		case 1:
			return "OR " + g.key(depth-1) + " " + g.key(depth-1)
		case 2:
			return "(" + g.key(depth-1) + " " + g.key(depth-1) + ")"
		}
	}
	switch g.r.IntN(12) {
	case 0:
		return "BODY " + literal(g.needle())
	case 1, 2:
		return "TEXT " + literal(g.needle())
	case 3:
		return "SUBJECT " + literal(g.needle())
	case 4:
		return "FROM " + literal(g.needle())
	case 5:
		return "TO " + literal(g.needle())
	case 6:
		return "CC " + literal(g.needle())
	case 7:
		return "BCC " + literal(g.needle())
	case 8:
		return "HEADER X-Tag " + literal(g.needle())
	case 9:
		return "SEEN"
	case 10:
		return fmt.Sprintf("UID %d:%d", 1+g.r.IntN(30), 1+g.r.IntN(80))
	}
	return "BODY " + literal(g.needle())
}

// TestSearchDecidedByIndex: over TCP, a SEARCH of BODY/TEXT keys joined
// by AND is answered from the index's hits without reading any message
// (the index account sees no more reads than a NOOP causes), and a
// message the index has not covered yet is still read and matched into
// the answer. OR goes the per-message way and answers the same.
func TestSearchDecidedByIndex(t *testing.T) {
	dir := t.TempDir()
	open, indexNow := sharedTextStore(t, dir)
	ts := newTestServer(t, serverOpts{dataDir: dir, noTextIndexer: true, openStore: open})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	for _, b := range []string{"alpha beta", "beta gamma", "gamma"} {
		c.appendMsg("INBOX", "", crlf("Subject: s\n\n"+b+"\n"))
	}
	indexNow("alice")
	c.ok("SELECT INBOX")
	reads := func(cmd string) ([]string, uint64) {
		t.Helper()
		before := ts.index.Stats()
		lines := c.ok(cmd)
		after := ts.index.Stats()
		return lines, after.Hits + after.Misses - before.Hits - before.Misses
	}
	_, noop := reads("NOOP")
	lines, n := reads("UID SEARCH BODY beta")
	hasLine(t, lines, "* SEARCH 1 2")
	if n != noop {
		t.Errorf("UID SEARCH BODY beta: %d index reads, NOOP %d: messages were fetched", n, noop)
	}
	lines, n = reads("UID SEARCH TEXT beta BODY gamma")
	hasLine(t, lines, "* SEARCH 2")
	if n != noop {
		t.Errorf("UID SEARCH TEXT beta BODY gamma: %d index reads, NOOP %d", n, noop)
	}
	c.appendMsg("INBOX", "", crlf("Subject: s\n\nbeta delta\n")) // queued, not indexed
	c.ok("NOOP")
	hasLine(t, c.ok("UID SEARCH BODY beta"), "* SEARCH 1 2 4")
	hasLine(t, c.ok("UID SEARCH BODY beta BODY delta"), "* SEARCH 4")
	hasLine(t, c.ok("UID SEARCH OR BODY alpha BODY delta"), "* SEARCH 1 4")
}

// sharedTextStore returns, for tests of the full-text index, how test
// servers open one shared store (serverOpts.openStore: nil for the
// sqlite store in dir; with TERN_TEST_STORE=postgres, Stores on one new
// database) and a function that indexes a user's queued mail now through
// another Store on it (beside the servers', as tern index beside tern
// serve).
func sharedTextStore(t *testing.T, dir string) (func(*testing.T, store.Notifier) store.Store, func(user string)) {
	t.Helper()
	ctx := context.Background()
	type textIndexer interface {
		store.Store
		IndexText(ctx context.Context, user string, rebuild bool, progress func(done, left int)) error
	}
	var open func(*testing.T, store.Notifier) store.Store
	other := func() (textIndexer, error) { return sqlite.Open(ctx, dir, sqlite.Options{}) }
	if os.Getenv("TERN_TEST_STORE") == "postgres" {
		url := pgtest.NewDatabase(t)
		open = func(t *testing.T, n store.Notifier) store.Store {
			st, err := postgres.Open(ctx, url, postgres.Options{Notifier: n})
			if err != nil {
				t.Fatalf("open store: %v", err)
			}
			return st
		}
		other = func() (textIndexer, error) { return postgres.Open(ctx, url, postgres.Options{}) }
	}
	return open, func(user string) {
		t.Helper()
		s, err := other()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.IndexText(ctx, user, false, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSearchNotLeavesOutPendingExpunge: a message another session
// expunged stays in this session's view until the EXPUNGE may be reported
// (not during SEARCH). The mailbox index no longer has it, so a NOT of a
// key the index decides must not count it as a non-match: it is left out,
// as when messages are read (an expunged one cannot be).
func TestSearchNotLeavesOutPendingExpunge(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	a := ts.login("alice", "secret")
	for _, from := range []string{"alice", "alice", "alice", "bob"} {
		a.appendMsg("INBOX", "", crlf("From: "+from+"@example.org\nSubject: s\n\nx\n"))
	}
	checkNotAfterExpunge(t, ts, a, "SEARCH NOT FROM alice", "SEARCH NOT SUBJECT s")
}

// TestSearchNotBodyLeavesOutPendingExpunge is the same for a BODY key,
// which the store's full-text index decides.
func TestSearchNotBodyLeavesOutPendingExpunge(t *testing.T) {
	dir := t.TempDir()
	open, indexNow := sharedTextStore(t, dir)
	ts := newTestServer(t, serverOpts{dataDir: dir, noTextIndexer: true, openStore: open})
	ts.addUser("alice", "secret")
	a := ts.login("alice", "secret")
	for _, body := range []string{"alpha", "alpha", "alpha", "beta"} {
		a.appendMsg("INBOX", "", crlf("Subject: s\n\n"+body+"\n"))
	}
	indexNow("alice")
	checkNotAfterExpunge(t, ts, a, "SEARCH NOT BODY alpha", "")
}

// checkNotAfterExpunge runs search (true of the fourth of INBOX's four
// messages only) in a's session before and after another session of
// alice's expunges the second, before and after a learns of it; none, if
// set, is a search true of no message.
func checkNotAfterExpunge(t *testing.T, ts *testServer, a *client, search, none string) {
	t.Helper()
	a.ok("SELECT INBOX")
	hasLine(t, a.ok(search), "* SEARCH 4")
	b := ts.login("alice", "secret")
	b.ok("SELECT INBOX")
	b.ok(`UID STORE 2 +FLAGS.SILENT (\Deleted)`)
	b.ok("EXPUNGE")
	hasLine(t, a.ok(search), "* SEARCH 4")
	if none != "" {
		hasLine(t, a.ok(none), "* SEARCH")
	}
	hasLine(t, a.ok("NOOP"), "* 2 EXPUNGE")
	hasLine(t, a.ok(search), "* SEARCH 3")
}
