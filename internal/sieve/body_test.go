package sieve

import "testing"

// body (RFC 5173).

const multipartMsg = `From: agent@example.org
To: alice@example.org
Subject: plans
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XX"

Prologue text MAKE MONEY FAST
--XX
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

The missile coordinates are secret. Caf=E9.
--XX
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: base64

PHA+VGhlIDxiPnJlZDwvYj4gYnV0dG9uPC9wPg==
--XX
Content-Type: audio/mp3
Content-Transfer-Encoding: base64

SUQzBAAAAAAA
--XX--
`

func TestBodyRFCExamples(t *testing.T) {
	// RFC 5173 §7.
	want(t, run(t, `require "body";
# Save messages mentioning the project schedule in the
# project/schedule folder.
if body :raw :contains "MAKE MONEY FAST" {
        discard;
}`, multipartMsg), "discard")
	src := `require ["body", "fileinto"];
# Save any message with any text MIME part that contains the
# words "missile" or "coordinates" in the "secrets" folder.
if body :content "text" :contains ["missile", "coordinates"] {
        fileinto "secrets";
}
# Save any message with an audio/mp3 MIME part in
# the "jukebox" folder.
if body :content "audio/mp3" :contains "" {
        fileinto "jukebox";
}`
	want(t, run(t, src, multipartMsg), "fileinto:secrets fileinto:jukebox")
	want(t, run(t, src, plainMsg), "implicit-keep")
}

func TestBodyTransforms(t *testing.T) {
	// :text (the default) decodes quoted-printable and the charset.
	want(t, run(t, `require "body"; if body :contains "Café" { discard; }`, multipartMsg), "discard")
	// The prologue is not text of any part.
	want(t, run(t, `require "body"; if body :text :contains "MAKE MONEY" { discard; }`, multipartMsg), "implicit-keep")
	// HTML parts are reduced to text: the tags do not split words.
	want(t, run(t, `require "body"; if body :text :contains "The red button" { discard; }`, multipartMsg), "discard")
	want(t, run(t, `require "body"; if body :content "text/html" :contains "<b>red</b>" { discard; }`, multipartMsg), "discard")
	want(t, run(t, `require "body"; if body :content "image" :contains "" { discard; }`, multipartMsg), "implicit-keep")
	want(t, run(t, `require "body"; if body :contains "anvil" { discard; }`, plainMsg), "discard")
	compileErr(t, `require "body"; if body :raw :text "x" { stop; }`, 1, "cannot be combined")
}

// nestedMsg: a multipart/mixed with a prologue and an epilogue holding a
// multipart/alternative (with its own prologue and epilogue) and a
// message/rfc822 whose body is text/plain by default.
const nestedMsg = `From: a@example.org
To: b@example.org
Subject: nested
Content-Type: multipart/mixed; boundary=outer

Outer prologue: WIN A PRIZE
--outer
Content-Type: multipart/alternative; boundary=inner

Inner prologue here
--inner
Content-Type: text/plain

Plain hello
--inner
Content-Type: text/html

<p>Html hello</p>
--inner--
Inner epilogue here
--outer
Content-Type: message/rfc822

From: forwarded@example.net
Subject: the forwarded one

Forwarded body text
--outer--
Outer epilogue: unsubscribe
`

// TestBodyContentMultipart: RFC 5173 §5.2 beyond leaf parts. A :content
// type that matches a multipart searches only its prologue and epilogue,
// each a string of its own; one that matches a message/rfc822 searches
// only the embedded message's header, as one string; nested parts are
// searched when their own types match. :text sees none of it.
func TestBodyContentMultipart(t *testing.T) {
	yes := func(test string) {
		t.Helper()
		want(t, run(t, `require ["body", "relational", "comparator-i;ascii-numeric"]; if `+test+` { discard; }`, nestedMsg), "discard")
	}
	no := func(test string) {
		t.Helper()
		want(t, run(t, `require ["body", "relational", "comparator-i;ascii-numeric"]; if `+test+` { discard; }`, nestedMsg), "implicit-keep")
	}
	yes(`body :content "multipart" :contains "WIN A PRIZE"`)
	yes(`body :content "multipart" :contains "Inner prologue"`)
	yes(`body :content "multipart" :contains "Inner epilogue"`)
	yes(`body :content "multipart" :contains "unsubscribe"`)
	yes(`body :content "multipart/alternative" :contains "Inner epilogue"`)
	no(`body :content "multipart/alternative" :contains "WIN A PRIZE"`)
	// Delimiter lines and nested parts are not part of a multipart's text.
	no(`body :content "multipart" :contains "--inner"`)
	no(`body :content "multipart" :contains "--outer"`)
	no(`body :content "multipart" :contains "Plain hello"`)
	no(`body :content "multipart" :contains "Forwarded body"`)
	// Prologue and epilogue are separate strings, exactly.
	yes(`body :content "multipart/mixed" :is "Outer prologue: WIN A PRIZE"`)
	yes("body :content \"multipart/mixed\" :is \"Outer epilogue: unsubscribe\r\n\"") // the epilogue runs to the end
	yes(`body :content "multipart" :count "eq" :comparator "i;ascii-numeric" "4"`)
	// message/rfc822: the embedded header, without the blank line.
	yes("body :content \"message/rfc822\" :is \"From: forwarded@example.net\r\nSubject: the forwarded one\r\n\"")
	no(`body :content "message/rfc822" :contains "Forwarded body"`)
	// The embedded body is text/plain by default and found as such.
	yes(`body :content "text/plain" :contains "Forwarded body text"`)
	yes(`body :content "text" :count "eq" :comparator "i;ascii-numeric" "3"`)
	// "" matches every type: frames, headers and leaves alike.
	yes(`body :content "" :contains "Inner epilogue"`)
	yes(`body :content "" :contains "forwarded@example.net"`)
	no(`body :content "" :contains "--outer"`)
	// :text only looks at text leaves.
	no(`body :text :contains "WIN A PRIZE"`)
	no(`body :text :contains "forwarded@example.net"`)
	yes(`body :text :contains "Html hello"`)
}
