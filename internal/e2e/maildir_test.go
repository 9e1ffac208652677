package e2e_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// maildirMsg is one message file in a local Maildir folder.
type maildirMsg struct {
	Path  string
	Flags string // the letters after ":2," (sorted), "" for new/
	Body  []byte
}

// readMaildir lists the messages in the Maildir folder dir (cur and new).
func readMaildir(t *testing.T, dir string) []maildirMsg {
	t.Helper()
	var out []maildirMsg
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			t.Fatalf("read maildir: %v", err)
		}
		for _, e := range ents {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			p := filepath.Join(dir, sub, e.Name())
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("read maildir message: %v", err)
			}
			m := maildirMsg{Path: p, Body: stripTUID(b)}
			if i := strings.LastIndex(e.Name(), ":2,"); i >= 0 {
				f := []byte(e.Name()[i+3:])
				sort.Slice(f, func(a, b int) bool { return f[a] < f[b] })
				m.Flags = string(f)
			}
			out = append(out, m)
		}
	}
	return out
}

// tuidRE matches the X-TUID header mbsync adds to a message it copies
// while it needs to find it again by content (isync's documented
// behaviour; it is not part of the mail).
var tuidRE = regexp.MustCompile(`(?m)^X-TUID: [A-Za-z0-9+/]{12}\r?\n`)

// stripTUID removes mbsync's X-TUID header line from a message.
func stripTUID(b []byte) []byte {
	// end is just past the last header line's terminator.
	end := -1
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		end = i + 1
	}
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 && (end < 0 || i+2 < end) {
		end = i + 2
	}
	if end < 0 {
		return b
	}
	head := tuidRE.ReplaceAll(b[:end], nil)
	return append(head, b[end:]...)
}

func (m maildirMsg) String() string {
	return fmt.Sprintf("%s flags=%q %q", filepath.Base(m.Path), m.Flags, m.Body)
}

// findMaildir returns the message whose bytes equal body.
func findMaildir(msgs []maildirMsg, body []byte) (maildirMsg, bool) {
	for _, m := range msgs {
		if bytes.Equal(m.Body, body) {
			return m, true
		}
	}
	return maildirMsg{}, false
}

// setMaildirFlags renames m to carry exactly flags (moving it to cur/).
func setMaildirFlags(t *testing.T, m maildirMsg, flags string) {
	t.Helper()
	name := filepath.Base(m.Path)
	if i := strings.LastIndex(name, ":2,"); i >= 0 {
		name = name[:i]
	}
	dir := filepath.Dir(filepath.Dir(m.Path))
	if err := os.Rename(m.Path, filepath.Join(dir, "cur", name+":2,"+flags)); err != nil {
		t.Fatalf("set maildir flags: %v", err)
	}
}

// lf converts CRLF line ends to LF, as Maildir clients store mail.
func lf(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }
