package imap

// METADATA (RFC 5464) and LIST-METADATA (RFC 9590).

// GetMetadataArgs is GETMETADATA [(options)] mailbox entries. The options
// (MAXSIZE, DEPTH) are also accepted after the mailbox, where the examples
// of RFC 5464 §4.2 put them. Entries are as sent (case not folded).
type GetMetadataArgs struct {
	Mailbox string
	Entries []string
	MetadataOptions
}

// MetadataOptions are the GETMETADATA options.
type MetadataOptions struct {
	MaxSize    uint32 // MAXSIZE, when HasMaxSize
	HasMaxSize bool
	Depth      string // "0" (default), "1" or "INFINITY"
}

// SetMetadataArgs is SETMETADATA mailbox (entry value ...).
type SetMetadataArgs struct {
	Mailbox string
	Entries []MetadataValue
}

// MetadataValue is one entry of SETMETADATA. Value is nil for NIL (remove
// the entry) and non-nil, possibly empty, for a string; Binary tells that
// it came as a literal8 (it may then contain NUL).
type MetadataValue struct {
	Name   string
	Value  []byte
	Binary bool
}

// ListMetadata is the LIST return option METADATA (RFC 9590): the
// entries to return for each listed mailbox, and MAXSIZE.
type ListMetadata struct {
	Entries []string
	MetadataOptions
}

// maxMetadataNesting bounds the parentheses inside a METADATA return
// option.
const maxMetadataNesting = 2

func (r *Reader) getMetadataArgs() *GetMetadataArgs {
	a := &GetMetadataArgs{}
	a.Depth = "0"
	r.sp()
	opts := false
	if r.peek() == '(' {
		r.metadataOptions(&a.MetadataOptions)
		opts = true
		r.sp()
	}
	a.Mailbox = r.astring()
	r.sp()
	if !opts && r.peek() == '(' && r.optionListAhead() {
		r.metadataOptions(&a.MetadataOptions)
		r.sp()
	}
	a.Entries = r.metadataEntries()
	return a
}

// optionListAhead reports whether the "(" at hand opens an option list
// rather than a list of entries (which start with "/", a quote or a
// literal).
func (r *Reader) optionListAhead() bool {
	b, err := r.br.Peek(2)
	if err != nil {
		r.ioFail(err)
	}
	c := b[1] | 0x20
	return c >= 'a' && c <= 'z'
}

// metadataOptions parses "(" option *(SP option) ")".
func (r *Reader) metadataOptions(o *MetadataOptions) {
	r.expect('(', "(")
	for {
		r.metadataOption(o)
		if r.peek() == ')' {
			r.next()
			return
		}
		r.sp()
	}
}

// metadataOption parses MAXSIZE number or DEPTH (0 / 1 / infinity).
func (r *Reader) metadataOption(o *MetadataOptions) {
	switch string(r.word(cAtom, "GETMETADATA option")) {
	case "MAXSIZE":
		if o.HasMaxSize {
			r.fail("MAXSIZE given twice")
		}
		r.sp()
		o.MaxSize = uint32(r.number(1<<32 - 1))
		o.HasMaxSize = true
	case "DEPTH":
		r.sp()
		switch d := string(r.word(cAtom, "depth")); d {
		case "0", "1", "INFINITY":
			o.Depth = d
		default:
			r.fail("DEPTH must be 0, 1 or infinity")
		}
	default:
		r.fail("unknown GETMETADATA option")
	}
}

// metadataEntries parses entry / "(" entry *(SP entry) ")".
func (r *Reader) metadataEntries() []string {
	if r.peek() != '(' {
		return []string{r.astring()}
	}
	r.next()
	var out []string
	for {
		out = append(out, r.astring())
		if r.peek() == ')' {
			r.next()
			return out
		}
		r.sp()
	}
}

func (r *Reader) setMetadataArgs() *SetMetadataArgs {
	r.sp()
	a := &SetMetadataArgs{Mailbox: r.astring()}
	r.sp()
	r.expect('(', "(")
	for {
		v := MetadataValue{Name: r.astring()}
		r.sp()
		v.Value, v.Binary = r.metadataValue()
		a.Entries = append(a.Entries, v)
		if r.peek() == ')' {
			r.next()
			return a
		}
		r.sp()
	}
}

// metadataValue parses value = nstring / literal8; nil for NIL.
func (r *Reader) metadataValue() (value []byte, binary bool) {
	switch r.peek() {
	case '"':
		return append([]byte{}, r.quotedBytes()...), false
	case '{', '~':
		return r.literal(r.opts.MaxLiteral, true)
	}
	if string(r.word(cAtom, "value")) != "NIL" {
		r.fail("expected NIL, a string or a literal8")
	}
	return nil, false
}

// listMetadata parses the argument of the LIST return option METADATA.
// RFC 9590 passes the GETMETADATA entries and options; accepted are the
// options list before the entries as in GETMETADATA (METADATA (MAXSIZE
// 100) (/shared/comment)) and one list holding entries, MAXSIZE and
// nested lists of either (METADATA (/shared/comment MAXSIZE 100)).
func (r *Reader) listMetadata() *ListMetadata {
	m := &ListMetadata{}
	m.Depth = "0"
	if r.peek() == '(' && r.optionListAhead() {
		r.metadataOptions(&m.MetadataOptions)
		r.sp()
		m.Entries = r.metadataEntries()
	} else if r.peek() == '(' {
		r.listMetadataItems(m, 0)
	} else {
		m.Entries = []string{r.astring()}
	}
	if len(m.Entries) == 0 {
		r.fail("METADATA needs an entry")
	}
	if m.Depth != "0" {
		r.fail("DEPTH is not a LIST METADATA option")
	}
	return m
}

// listMetadataItems parses "(" item *(SP item) ")" where an item is an
// entry, an option or such a list.
func (r *Reader) listMetadataItems(m *ListMetadata, nest int) {
	if nest > maxMetadataNesting {
		r.fail("METADATA nested too deep")
	}
	r.expect('(', "(")
	for {
		switch c := r.peek(); {
		case c == '(':
			r.listMetadataItems(m, nest+1)
		case c == '/' || c == '"' || c == '{':
			m.Entries = append(m.Entries, r.astring())
		default:
			r.metadataOption(&m.MetadataOptions)
		}
		if r.peek() == ')' {
			r.next()
			return
		}
		r.sp()
	}
}
