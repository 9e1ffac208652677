package managesieve

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadCommand: any input yields commands or clean errors, never a
// panic, and no argument exceeds the bounds.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"CAPABILITY\r\n",
		"PUTSCRIPT \"a\" {5+}\r\nkeep;\r\n",
		"PUTSCRIPT {1}\r\na {0}\r\n\r\n",
		"NOOP \"a\\\"b\\\\c\"\r\n",
		"HAVESPACE \"x\" 4294967295\r\n",
		"AUTHENTICATE \"PLAIN\" \"AGFsaWNlAHB3\"\r\n",
		"NOOP \"unterminated\r\nNOOP\r\n",
		"X {99999999999999999999}\r\n",
		"\r\n\r\nLOGOUT\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &reader{br: bufio.NewReader(bytes.NewReader(data)), maxLine: 256, maxLiteral: 64, maxDiscard: 128, maxArgs: 4}
		for range 100 {
			cmd, err := r.readCommand()
			var syn errSyntax
			var big errTooLarge
			switch {
			case err == nil:
				if len(cmd.args) > 4 {
					t.Fatalf("%d arguments", len(cmd.args))
				}
				for _, a := range cmd.args { // quoted strings and atoms within the line, literals within 64
					if len(a.s) > 256 {
						t.Fatalf("argument of %d bytes", len(a.s))
					}
				}
			case errors.As(err, &syn), errors.As(err, &big):
			case errors.Is(err, errFatal), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				return
			default:
				t.Fatalf("unexpected error %v", err)
			}
		}
	})
}
