package imap

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSort(t *testing.T) {
	all := &SearchKey{Op: SearchAll}
	for in, want := range map[string]*Command{
		"a SORT (SUBJECT) UTF-8 ALL\r\n": {Tag: "a", Name: "SORT", Args: &SortArgs{
			Criteria: []SortCriterion{{Key: "SUBJECT"}}, Charset: "UTF-8", Key: all}},
		"a uid sort (reverse date displayfrom) \"us-ascii\" 1:2 SEEN\r\n": {Tag: "a", Name: "SORT", UID: true, Args: &SortArgs{
			Criteria: []SortCriterion{{Key: "DATE", Reverse: true}, {Key: "DISPLAYFROM"}}, Charset: "us-ascii",
			Key: &SearchKey{Op: SearchAnd, Children: []*SearchKey{
				{Op: SearchSeqSet, Set: NumSet{Ranges: []NumRange{{Start: 1, Stop: 2}}}}, {Op: SearchSeen}}}}},
		"a SORT RETURN (MIN COUNT) (ARRIVAL) UTF-8 ALL\r\n": {Tag: "a", Name: "SORT", Args: &SortArgs{
			HasReturn: true, Return: []string{"MIN", "COUNT"}, Criteria: []SortCriterion{{Key: "ARRIVAL"}}, Charset: "UTF-8", Key: all}},
		"a SORT RETURN () (SIZE) UTF-8 ALL\r\n": {Tag: "a", Name: "SORT", Args: &SortArgs{
			HasReturn: true, Return: []string{}, Criteria: []SortCriterion{{Key: "SIZE"}}, Charset: "UTF-8", Key: all}},
		"t THREAD REFERENCES UTF-8 ALL\r\n": {Tag: "t", Name: "THREAD", Args: &ThreadArgs{Algorithm: "REFERENCES", Charset: "UTF-8", Key: all}},
		"t UID THREAD orderedsubject US-ASCII ALL\r\n": {Tag: "t", Name: "THREAD", UID: true, Args: &ThreadArgs{
			Algorithm: "ORDEREDSUBJECT", Charset: "US-ASCII", Key: all}},
	} {
		if got := parseOne(t, in); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %+v (%+v), want %+v", in, got, got.Args, want.Args)
		}
	}
	// The charset decodes string arguments.
	cmd := parseOne(t, "a SORT (FROM) ISO-8859-1 SUBJECT {1}\r\n\xe9\r\n")
	if k := cmd.Args.(*SortArgs).Key; k.Op != SearchSubject || k.Str != "é" {
		t.Errorf("decoded key: %+v", k)
	}
	for _, in := range []string{
		"a SORT\r\n", "a SORT (SUBJECT)\r\n", "a SORT (SUBJECT) UTF-8\r\n", "a SORT () UTF-8 ALL\r\n",
		"a SORT (COLOR) UTF-8 ALL\r\n", "a SORT (REVERSE) UTF-8 ALL\r\n", "a SORT SUBJECT UTF-8 ALL\r\n",
		"a SORT RETURN (PARTIAL 1:*) (SUBJECT) UTF-8 ALL\r\n", "a SORT (SUBJECT) KOI9 ALL\r\n",
		"a THREAD\r\n", "a THREAD REFERENCES\r\n", "a THREAD REFERENCES UTF-8\r\n", "a THREAD XYZ UTF-8 ALL\r\n",
		"a UID THREAD (REFERENCES) UTF-8 ALL\r\n",
	} {
		r := newTestReader(in, ReaderOptions{})
		cmd, err := r.ReadCommand()
		if err == nil {
			t.Errorf("%q parsed as %+v", in, cmd)
			continue
		}
		if strings.Contains(in, "KOI9") && !strings.Contains(err.Error(), "BADCHARSET") {
			t.Errorf("%q: %v, want BADCHARSET", in, err)
		}
	}
}
