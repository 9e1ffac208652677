package server_test

import (
	"bytes"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// multipartMsg has a text/plain + text/html alternative, a base64
// attachment and a nested message/rfc822 that is itself multipart.
var multipartMsg = crlf(`From: "Alice Example" <alice@example.org>
To: Bob <bob@example.org>, carol@example.org
Cc: undisclosed-recipients:;
Subject: =?UTF-8?Q?Quarterly_r=C3=A9port?=
Date: Tue, 03 Mar 2026 10:00:00 +0100
Message-ID: <q1@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

This is a multi-part message in MIME format.
--outer
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Numbers are up =E2=80=94 see attached.
--alt
Content-Type: text/html; charset=utf-8

<p>Numbers are up</p>
--alt--

--outer
Content-Type: application/pdf; name="q1.pdf"
Content-Disposition: attachment; filename="q1.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcOkw7zDtsOfCg==
--outer
Content-Type: message/rfc822

From: Dave <dave@example.net>
To: alice@example.org
Subject: Fwd data
Date: Mon, 02 Mar 2026 09:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="inner"

--inner
Content-Type: text/plain

inner text
--inner
Content-Type: text/csv; name=data.csv

a,b
1,2
--inner--

--outer--
`)

func dialGoIMAP(t *testing.T, ts *testServer, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(ts.tlsAddr, &imapclient.Options{
		TLSConfig:             &tls.Config{RootCAs: ts.roots, ServerName: "localhost"},
		UnilateralDataHandler: h,
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice", "secret").Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

func TestGoIMAPClientWorkflow(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := dialGoIMAP(t, ts, nil)

	// List the way Thunderbird does.
	boxes, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true, ReturnSpecialUse: true, ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	uses := map[string]string{}
	for _, b := range boxes {
		for _, a := range b.Attrs {
			if a == imap.MailboxAttrSent || a == imap.MailboxAttrTrash || a == imap.MailboxAttrDrafts {
				uses[string(a)] = b.Mailbox
			}
		}
	}
	if uses[string(imap.MailboxAttrTrash)] != "Trash" || uses[string(imap.MailboxAttrSent)] != "Sent" {
		t.Fatalf("special-use: %v (%+v)", uses, boxes)
	}

	app := c.Append("INBOX", int64(len(multipartMsg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft}})
	app.Write([]byte(multipartMsg))
	app.Close()
	ad, err := app.Wait()
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if ad.UID != 1 || ad.UIDValidity == 0 {
		t.Fatalf("append data: %+v", ad)
	}

	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	if sel.NumMessages != 1 || sel.UIDValidity != ad.UIDValidity {
		t.Fatalf("select data: %+v", sel)
	}

	full := &imap.FetchItemBodySection{Peek: true}
	text := &imap.FetchItemBodySection{Part: []int{1, 1}, Peek: true}
	inner := &imap.FetchItemBodySection{Part: []int{3, 2}, Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(ad.UID), &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, RFC822Size: true, InternalDate: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{full, text, inner},
		BinarySection: []*imap.FetchItemBinarySection{{Part: []int{2}, Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("fetched %d messages", len(msgs))
	}
	m := msgs[0]
	if m.RFC822Size != int64(len(multipartMsg)) {
		t.Fatalf("size %d, want %d", m.RFC822Size, len(multipartMsg))
	}
	if got := m.FindBodySection(full); !bytes.Equal(got, []byte(multipartMsg)) {
		t.Fatalf("BODY[] differs from the appended message")
	}
	if got := string(m.FindBodySection(text)); got != "Numbers are up =E2=80=94 see attached." {
		t.Fatalf("BODY[1.1] = %q", got)
	}
	if got := string(m.FindBodySection(inner)); got != "a,b\r\n1,2" {
		t.Fatalf("BODY[3.2] = %q", got)
	}
	if got := m.FindBinarySection(&imap.FetchItemBinarySection{Part: []int{2}, Peek: true}); !bytes.HasPrefix(got, []byte("%PDF-1.4")) {
		t.Fatalf("BINARY[2] = %q", got)
	}
	env := m.Envelope
	if env == nil || env.Subject != "Quarterly réport" || env.MessageID != "q1@example.org" || len(env.To) != 2 || env.From[0].Host != "example.org" {
		t.Fatalf("envelope: %+v", env)
	}
	mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || mp.Subtype != "mixed" || len(mp.Children) != 3 {
		t.Fatalf("bodystructure: %#v", m.BodyStructure)
	}
	att := mp.Children[1].(*imap.BodyStructureSinglePart)
	if !strings.EqualFold(att.Type, "application") || att.Extended == nil || att.Extended.Disposition == nil || att.Extended.Disposition.Params["filename"] != "q1.pdf" {
		t.Fatalf("attachment part: %#v", att)
	}
	fwd := mp.Children[2].(*imap.BodyStructureSinglePart)
	if fwd.MessageRFC822 == nil || fwd.MessageRFC822.Envelope.Subject != "Fwd data" {
		t.Fatalf("message/rfc822 part: %#v", fwd)
	}

	// Flag, search, move to Trash the way Thunderbird deletes.
	if err := c.Store(imap.UIDSetNum(ad.UID), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen, "$Important"}, Silent: true}, nil).Close(); err != nil {
		t.Fatalf("store: %v", err)
	}
	sd, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{"$Important"}, Body: []string{"inner text"}}, nil).Wait()
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	if uids := sd.AllUIDs(); len(uids) != 1 || uids[0] != ad.UID {
		t.Fatalf("search result: %v", uids)
	}
	md, err := c.Move(imap.UIDSetNum(ad.UID), "Trash").Wait()
	if err != nil {
		t.Fatalf("move: %v", err)
	}
	if md.UIDValidity == 0 {
		t.Fatalf("move data: %+v", md)
	}
	st, err := c.Status("Trash", &imap.StatusOptions{NumMessages: true, NumUnseen: true}).Wait()
	if err != nil || *st.NumMessages != 1 || *st.NumUnseen != 0 {
		t.Fatalf("status Trash: %+v %v", st, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatalf("logout: %v", err)
	}
}

func TestGoIMAPIdleSeesOtherClient(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	exists := make(chan uint32, 4)
	expunged := make(chan uint32, 4)
	a := dialGoIMAP(t, ts, &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
		Expunge: func(seq uint32) { expunged <- seq },
	})
	b := dialGoIMAP(t, ts, nil)
	if _, err := a.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := a.Idle()
	if err != nil {
		t.Fatalf("idle: %v", err)
	}
	app := b.Append("INBOX", int64(len(simpleMsg)), nil)
	app.Write([]byte(simpleMsg))
	app.Close()
	if _, err := app.Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-exists:
		if n != 1 {
			t.Fatalf("EXISTS %d", n)
		}
	case <-time.After(time.Second):
		t.Fatal("idling client did not see the APPEND within a second")
	}
	if _, err := b.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case seq := <-expunged:
		if seq != 1 {
			t.Fatalf("EXPUNGE %d", seq)
		}
	case <-time.After(time.Second):
		t.Fatal("idling client did not see the EXPUNGE within a second")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}
