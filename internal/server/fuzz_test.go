package server_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/server"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

// fixedAuth accepts alice/secret. The fuzz target uses it instead of the
// argon2id authenticator only to keep each input fast; storage is real.
type fixedAuth struct{}

func (fixedAuth) Authenticate(ctx context.Context, remote net.Addr, user, pass string) error {
	if user == "alice" && pass == "secret" {
		return nil
	}
	return errors.New("invalid credentials")
}

// panicLog records log records that report a recovered panic.
type panicLog struct {
	mu     sync.Mutex
	panics []string
}

func (h *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.Key + "=" + a.Value.String())
			return true
		})
		h.mu.Lock()
		h.panics = append(h.panics, b.String())
		h.mu.Unlock()
	}
	return nil
}
func (h *panicLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *panicLog) WithGroup(string) slog.Handler      { return h }

func (h *panicLog) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.panics
	h.panics = nil
	return p
}

var fuzzMessages = []string{
	"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: hello\r\nDate: Tue, 03 Mar 2026 10:00:00 +0100\r\nMessage-ID: <1@example.org>\r\n\r\nHello Bob.\r\n",
	multipartMsg,
	"Subject: =?utf-8?B?w6TDtsO8?=\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nK=E4se\r\n",
}

// Seeds: what real clients send after login (Thunderbird, mbsync, iOS
// Mail, Outlook), written from RFC examples and client behaviour.
var sessionSeeds = []string{
	"7 REPLACE 1 INBOX (\\Seen) {20+}\r\nSubject: x\r\n\r\nbody\r\n\r\n8 UID REPLACE * Drafts ~{3+}\r\na\x00b\r\n9 UNAUTHENTICATE\r\n10 LOGIN alice secret\r\n11 SELECT INBOX\r\n",
	"7 ENABLE UIDONLY QRESYNC\r\n8 FETCH 1 FLAGS\r\n9 UID FETCH 1:* (FLAGS)\r\n10 UID STORE 1 +FLAGS (\\Deleted)\r\n11 EXPUNGE\r\n12 UID SEARCH 1\r\n",
	"1 CAPABILITY\r\n2 ID (\"name\" \"Thunderbird\" \"version\" \"128.0\")\r\n3 LIST (SUBSCRIBED) \"\" \"*\" RETURN (CHILDREN SPECIAL-USE)\r\n4 UID FETCH 1:* (FLAGS)\r\n5 UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])\r\n6 IDLE\r\nDONE\r\n",
	"2 LIST \"\" \"*\"\r\n3 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)\r\n4 EXAMINE INBOX\r\n5 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)\r\n6 UID FETCH 2 BODY.PEEK[]\r\n7 APPEND Sent (\\Seen) {20+}\r\nSubject: x\r\n\r\nbody\r\n\r\n8 UID STORE 1 +FLAGS.SILENT (\\Deleted)\r\n9 UID EXPUNGE 1\r\n",
	"3 ENABLE IMAP4rev2\r\n4 NAMESPACE\r\n5 FETCH 1:* (ENVELOPE BODYSTRUCTURE INTERNALDATE FLAGS)\r\n6 FETCH 2 (BODY.PEEK[1.MIME] BODY.PEEK[1.1] BINARY.PEEK[1.2] BINARY.SIZE[2] BODY[3.HEADER])\r\n7 SEARCH RETURN (MIN MAX COUNT) UNSEEN\r\n",
	"4 UID SEARCH CHARSET UTF-8 OR SUBJECT hello NOT (FROM alice SINCE 1-Jan-2020) LARGER 10 UID 1:*\r\n5 SEARCH RETURN (SAVE) FLAGGED\r\n6 FETCH $ (FLAGS)\r\n7 COPY 1:2 Trash\r\n8 MOVE 3 Archive\r\n9 CLOSE\r\n",
	"5 CREATE Foo/Bar\r\n6 RENAME Foo Baz\r\n7 LIST \"\" %\r\n8 SUBSCRIBE Baz/Bar\r\n9 LSUB \"\" *\r\n10 DELETE Baz/Bar\r\n11 STATUS Drafts (MESSAGES SIZE)\r\n",
	"6 FETCH 1:* (BODY[HEADER.FIELDS.NOT (Subject)]<0.10> BODY[TEXT]<5.100> RFC822.HEADER RFC822.TEXT)\r\n7 STORE 1:* FLAGS ($Forwarded \\Answered)\r\n8 UNSELECT\r\n",
	"7 APPEND INBOX {5}\r\nhello\r\n8 NOOP\r\n9 CHECK\r\n10 LOGOUT\r\n",
	"8 SEARCH (OR (OR 1 2) (NOT ((((UID 1)))))) HEADER Subject \"\" BODY \"x\" TEXT {3}\r\nabc\r\n",
	"9 FETCH 4294967295:* FLAGS\r\n10 FETCH 0 FLAGS\r\n11 UID FETCH 1,2,3,4,5,6,7,8,9:1 (FLAGS)\r\n",
	"\x00\xff\r\n\r\n* * *\r\n{99999999999}\r\n",
	"11 GENURLAUTH \"imap://alice@h/INBOX/;uid=1/;section=1.MIME;urlauth=authuser\" INTERNAL\r\n12 URLFETCH (\"imap://alice@h/INBOX/;uid=1/;section=2;urlauth=user+alice:internal:0123456789abcdef0123456789abcdef\" BINARY BODYPARTSTRUCTURE) x\r\n13 RESETKEY INBOX\r\n14 APPEND INBOX CATENATE (URL \"imap://alice@h/INBOX/;uid=2;urlauth=anonymous:internal:00\" TEXT {1+}\r\nx)\r\n15 RESETKEY\r\n",
	"10 SETMETADATA INBOX (/private/comment \"c\" /shared/bin ~{3+}\r\na\x00b)\r\n11 GETMETADATA (MAXSIZE 1 DEPTH infinity) INBOX (/private /shared)\r\n12 LIST \"\" * RETURN (METADATA (/private/comment) STATUS (MESSAGES))\r\n13 RENAME Drafts D2\r\n14 SETMETADATA \"\" (/shared/x NIL)\r\n15 GETMETADATA Nope /private/a*\r\n",
}

// FuzzSession feeds arbitrary bytes to a live, logged-in session with a
// selected mailbox over real TCP against a real SQLite store. The session
// must not panic (the server recovers and logs panics: any is a failure),
// must end promptly once the client half-closes, and must not leak
// goroutines.
func FuzzSession(f *testing.F) {
	for _, s := range sessionSeeds {
		f.Add([]byte(s))
	}
	ctx := context.Background()
	hub := notify.New()
	st, err := sqlite.Open(ctx, f.TempDir(), sqlite.Options{Notifier: hub})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateUser(ctx, "alice", "x"); err != nil {
		f.Fatal(err)
	}
	acct, err := st.Account(ctx, "alice")
	if err != nil {
		f.Fatal(err)
	}
	defer acct.Close()
	for _, mb := range []string{"Drafts", "Sent", "Trash", "Archive"} {
		if err := acct.CreateMailbox(ctx, mb, ""); err != nil {
			f.Fatal(err)
		}
	}
	plog := &panicLog{}
	srv := server.New(server.Config{
		InsecureAuth:         true,
		Auth:                 fixedAuth{},
		Notify:               hub,
		Logger:               slog.New(plog),
		MaxLineLength:        8192,
		MaxLiteralSize:       1 << 20,
		PreAuthTimeout:       5 * time.Second,
		IdleTimeout:          5 * time.Second,
		WriteTimeout:         5 * time.Second,
		MaxPreAuthConnsPerIP: 1 << 20, ConnBurstPerIP: 1 << 20, MaxUserIPConns: 1 << 20, MaxUserConns: 1 << 20,
	}, st)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(ln, false)
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	baseline := -1

	f.Fuzz(func(t *testing.T, in []byte) {
		// Keep a few messages to work on.
		if s, err := acct.Status(ctx, "INBOX"); err == nil && s.Messages < 3 {
			for _, m := range fuzzMessages {
				if _, err := acct.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte(m)}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		out := make(chan []byte, 1)
		go func() {
			// Keep only the tail; the output of one input is bounded by the
			// deadline anyway.
			var tail bytes.Buffer
			buf := make([]byte, 32<<10)
			for {
				n, err := nc.Read(buf)
				tail.Write(buf[:n])
				if tail.Len() > 1<<20 {
					tail.Next(tail.Len() - 64<<10)
				}
				if err != nil {
					out <- tail.Bytes()
					return
				}
			}
		}()
		nc.SetDeadline(time.Now().Add(3 * time.Second))
		prefix := "a LOGIN alice secret\r\nb SELECT INBOX\r\n"
		nc.Write([]byte(prefix))
		nc.Write(in)
		nc.(*net.TCPConn).CloseWrite()
		var got []byte
		select {
		case got = <-out:
		case <-time.After(3 * time.Second):
			t.Fatalf("session did not end within 3s after the client closed its side")
		}
		if p := plog.take(); len(p) > 0 {
			t.Fatalf("server panicked:\n%s", strings.Join(p, "\n"))
		}
		if bytes.Contains(got, []byte("Internal server error")) {
			t.Fatalf("server reported an internal error:\n%s", got)
		}
		// No goroutine leak: back to the baseline once the session ended.
		if baseline < 0 {
			time.Sleep(50 * time.Millisecond)
			baseline = runtime.NumGoroutine()
		}
		for i := 0; runtime.NumGoroutine() > baseline+2; i++ {
			if i > 200 {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Fatalf("goroutines: %d, baseline %d\n%s", runtime.NumGoroutine(), baseline, buf[:n])
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
