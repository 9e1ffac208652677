package imap

import (
	"reflect"
	"testing"
)

func TestParseMetadata(t *testing.T) {
	opts := func(depth string, maxSize uint32, has bool) MetadataOptions {
		return MetadataOptions{Depth: depth, MaxSize: maxSize, HasMaxSize: has}
	}
	for in, want := range map[string]any{
		// RFC 5464 §4.2 examples (with erratum 3868's parenthesised list).
		"a GETMETADATA \"\" /shared/comment\r\n": &GetMetadataArgs{Mailbox: "", Entries: []string{"/shared/comment"}, MetadataOptions: opts("0", 0, false)},
		"a GETMETADATA \"INBOX\" (/private/comment /shared/comment)\r\n": &GetMetadataArgs{Mailbox: "INBOX",
			Entries: []string{"/private/comment", "/shared/comment"}, MetadataOptions: opts("0", 0, false)},
		"a GETMETADATA (MAXSIZE 1024) \"INBOX\" \"/private/comment\"\r\n": &GetMetadataArgs{Mailbox: "INBOX",
			Entries: []string{"/private/comment"}, MetadataOptions: opts("0", 1024, true)},
		"a GETMETADATA \"INBOX\" (MAXSIZE 1024) (/shared/comment /private/comment)\r\n": &GetMetadataArgs{Mailbox: "INBOX",
			Entries: []string{"/shared/comment", "/private/comment"}, MetadataOptions: opts("0", 1024, true)},
		"a GETMETADATA (DEPTH 1) \"INBOX\" (/private/filters/values)\r\n": &GetMetadataArgs{Mailbox: "INBOX",
			Entries: []string{"/private/filters/values"}, MetadataOptions: opts("1", 0, false)},
		"a getmetadata (depth infinity maxsize 5) INBOX {8}\r\n/private\r\n": &GetMetadataArgs{Mailbox: "INBOX",
			Entries: []string{"/private"}, MetadataOptions: opts("INFINITY", 5, true)},
		"a SETMETADATA INBOX (/private/comment {33}\r\nMy new comment across\r\ntwo lines.)\r\n": &SetMetadataArgs{Mailbox: "INBOX",
			Entries: []MetadataValue{{Name: "/private/comment", Value: []byte("My new comment across\r\ntwo lines.")}}},
		"a SETMETADATA INBOX (/private/comment NIL)\r\n": &SetMetadataArgs{Mailbox: "INBOX",
			Entries: []MetadataValue{{Name: "/private/comment"}}},
		"a SETMETADATA \"\" (/shared/comment \"\" /private/bin ~{3}\r\na\x00b)\r\n": &SetMetadataArgs{Mailbox: "",
			Entries: []MetadataValue{{Name: "/shared/comment", Value: []byte{}}, {Name: "/private/bin", Value: []byte("a\x00b"), Binary: true}}},
	} {
		got := parseOne(t, in)
		if !reflect.DeepEqual(got.Args, want) {
			t.Errorf("%q: got %+v, want %+v", in, got.Args, want)
		}
	}
}

func TestParseListMetadata(t *testing.T) {
	for in, want := range map[string]*ListMetadata{
		"a LIST \"\" % RETURN (METADATA (/shared/comment /private/comment))\r\n": {Entries: []string{"/shared/comment", "/private/comment"}, MetadataOptions: MetadataOptions{Depth: "0"}},
		"a LIST \"\" % RETURN (METADATA (MAXSIZE 100) (/shared/comment))\r\n":    {Entries: []string{"/shared/comment"}, MetadataOptions: MetadataOptions{Depth: "0", MaxSize: 100, HasMaxSize: true}},
		"a LIST \"\" % RETURN (METADATA ((/shared/comment) MAXSIZE 7) CHILDREN)\r\n": {Entries: []string{"/shared/comment"},
			MetadataOptions: MetadataOptions{Depth: "0", MaxSize: 7, HasMaxSize: true}},
		"a LIST \"\" * RETURN (SUBSCRIBED METADATA /private/comment)\r\n": {Entries: []string{"/private/comment"}, MetadataOptions: MetadataOptions{Depth: "0"}},
	} {
		got := parseOne(t, in).Args.(*ListArgs)
		if !reflect.DeepEqual(got.Metadata, want) {
			t.Errorf("%q: got %+v, want %+v", in, got.Metadata, want)
		}
	}
}

func TestParseMetadataBad(t *testing.T) {
	for _, in := range []string{
		"a GETMETADATA\r\n",
		"a GETMETADATA INBOX\r\n",
		"a GETMETADATA INBOX ()\r\n",
		"a GETMETADATA (DEPTH 2) INBOX /private/x\r\n",
		"a GETMETADATA (MAXSIZE -1) INBOX /private/x\r\n",
		"a GETMETADATA (MAXSIZE 99999999999) INBOX /private/x\r\n",
		"a GETMETADATA (MAXSIZE 1 MAXSIZE 2) INBOX /private/x\r\n",
		"a GETMETADATA (FOO 1) INBOX /private/x\r\n",
		"a GETMETADATA () INBOX /private/x\r\n",
		"a GETMETADATA INBOX (/private/x\r\n",
		"a SETMETADATA INBOX /private/x \"v\"\r\n",
		"a SETMETADATA INBOX ()\r\n",
		"a SETMETADATA INBOX (/private/x)\r\n",
		"a SETMETADATA INBOX (/private/x FOO)\r\n",
		"a SETMETADATA INBOX (/private/x {3}\r\na\x00b)\r\n",
		"a SETMETADATA INBOX (/private/x \"a\x00\")\r\n",
		"a LIST \"\" % RETURN (METADATA)\r\n",
		"a LIST \"\" % RETURN (METADATA ())\r\n",
		"a LIST \"\" % RETURN (METADATA (DEPTH 1) (/private/x))\r\n",
		"a LIST \"\" % RETURN (METADATA (/a) METADATA (/b))\r\n",
		"a LIST \"\" % RETURN (METADATA ((((/a)))))\r\n",
	} {
		r := newTestReader(in, ReaderOptions{})
		if cmd, err := r.ReadCommand(); err == nil {
			t.Errorf("%q parsed as %+v", in, cmd.Args)
		}
	}
}
