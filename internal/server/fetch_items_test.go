package server

import (
	"bufio"
	"strings"
	"testing"

	"github.com/tern-imap/tern/imap"
)

// TestFetchItemsCoverParser checks that every item the parser can produce
// has a writer in the table.
func TestFetchItemsCoverParser(t *testing.T) {
	line := "A1 FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE RFC822 RFC822.HEADER " +
		"RFC822.TEXT BODY[] BODY.PEEK[1] BINARY[1] BINARY.PEEK[1] BINARY.SIZE[1] MODSEQ EMAILID THREADID SAVEDATE PREVIEW)\r\n"
	cmd, err := imap.NewReader(bufio.NewReader(strings.NewReader(line)), imap.ReaderOptions{}).ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[imap.FetchItemKind]bool{}
	for _, it := range cmd.Args.(*imap.FetchArgs).Items {
		kinds[it.Kind] = true
		if int(it.Kind) >= len(fetchItems) || fetchItems[it.Kind].write == nil {
			t.Errorf("no writer for FETCH item kind %d", it.Kind)
		}
	}
	if len(kinds) != len(fetchItems) {
		t.Errorf("the command names %d kinds, the table has %d: extend the test", len(kinds), len(fetchItems))
	}
}
