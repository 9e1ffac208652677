package sieve

import (
	"strings"
	"testing"
)

// imap4flags (RFC 5232).

func TestImap4flagsRFCExample(t *testing.T) {
	// RFC 5232 §6, first example (with variables for "${MyFlags}").
	src := `require ["fileinto", "imap4flags", "variables"];
if size :over 1M {
    addflag "MyFlags" "Big";
    if header :is "From" "boss@company.example.com" {
        # The message will be marked as "\Flagged Big" when filed into
        # mailbox "Big messages"
        addflag "MyFlags" "\\Flagged";
    }
    fileinto :flags "${MyFlags}" "Big messages";
}
if header :is "From" "grandma@example.net" {
    addflag "MyFlags" ["\\Answered", "$MDNSent"];
    # If the message is bigger than 1Mb it will be marked as
    # "Big \Answered $MDNSent" when filed into mailbox "grandma".
    # If the message is shorter than 1Mb it will be marked as
    # "\Answered $MDNSent"
    fileinto :flags "${MyFlags}" "GrandMa";
}
# Note: the following keep will store the message with no flags
keep;`
	big := "From: boss@company.example.com\n\n" + strings.Repeat("x", 1<<20)
	want(t, run(t, src, big), `fileinto:Big messages[Big \Flagged] keep`)
	want(t, run(t, src, "From: grandma@example.net\n\nhi\n"), `fileinto:GrandMa[\Answered $MDNSent] keep`)
}

func TestImap4flagsInternalVariable(t *testing.T) {
	want(t, run(t, `require "imap4flags"; setflag "\\seen Junk"; addflag "\\Flagged"; removeflag "junk";`, plainMsg), `implicit-keep[\Seen \Flagged]`)
	want(t, run(t, `require "imap4flags"; addflag "A"; keep; addflag "B"; keep :flags "C";`, plainMsg), "keep[A] keep[C]")
	want(t, run(t, `require "imap4flags"; setflag ["a", "b c"]; if hasflag :is "c" { discard; }`, plainMsg), "discard")
	want(t, run(t, `require "imap4flags"; setflag "a b"; if hasflag :is "a c" { discard; }`, plainMsg), "discard")
	want(t, run(t, `require ["imap4flags", "relational", "comparator-i;ascii-numeric"];
setflag "a b c"; if hasflag :count "ge" :comparator "i;ascii-numeric" "3" { discard; }`, plainMsg), "discard")
	want(t, run(t, `require ["imap4flags", "variables"]; set "v" "x"; addflag "v" "y"; if hasflag :is "v" "y" { discard; }`, plainMsg), "discard")
	compileErr(t, `require "imap4flags"; setflag "bad name" "x";`, 1, "invalid variable name")
	compileErr(t, `keep :flags "x";`, 1, "needs require \"imap4flags\"")
}

// Envelope.InitialFlags (a script after another in a sequence): the
// internal variable starts with them; a script without imap4flags
// stores them with its keeps and fileintos; IMAP's message flags win.
func TestImap4flagsInitialFlags(t *testing.T) {
	env := testEnvelope()
	env.InitialFlags = []string{`\flagged`, "$spam"}
	want(t, runEnv(t, `require "imap4flags"; if hasflag "$spam" { removeflag "$spam"; addflag "$seen-spam"; }`, plainMsg, env),
		`implicit-keep[\Flagged $seen-spam]`)
	want(t, runEnv(t, `require "fileinto"; fileinto "Lists";`, plainMsg, env), `fileinto:Lists[\Flagged $spam]`)
	want(t, runEnv(t, `keep;`, plainMsg, env), `keep[\Flagged $spam]`)
	want(t, run(t, `require "fileinto"; fileinto "Lists";`, plainMsg), `fileinto:Lists`)
	env.IMAP = &IMAPEvent{Cause: "FLAG", Flags: []string{"$own"}}
	want(t, runEnv(t, `require "imap4flags"; addflag "x";`, plainMsg, env), `implicit-keep[$own x]`)
}
