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
