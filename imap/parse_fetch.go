package imap

import "strings"

func (r *Reader) fetchArgs() *FetchArgs {
	r.sp()
	a := &FetchArgs{Set: r.seqSet()}
	r.sp()
	if r.peek() == '(' {
		r.next()
		for {
			a.Items = append(a.Items, r.fetchAtt())
			if r.peek() == ')' {
				r.next()
				break
			}
			r.sp()
		}
	} else {
		name := r.word(cName, "fetch item")
		switch string(name) {
		case "ALL":
			a.Items = []FetchItem{{Kind: FetchFlags}, {Kind: FetchInternalDate}, {Kind: FetchRFC822Size}, {Kind: FetchEnvelope}}
		case "FAST":
			a.Items = []FetchItem{{Kind: FetchFlags}, {Kind: FetchInternalDate}, {Kind: FetchRFC822Size}}
		case "FULL":
			a.Items = []FetchItem{{Kind: FetchFlags}, {Kind: FetchInternalDate}, {Kind: FetchRFC822Size}, {Kind: FetchEnvelope}, {Kind: FetchBody}}
		default:
			a.Items = []FetchItem{r.fetchAttNamed(name)}
		}
	}
	if r.atEOL() {
		return a
	}
	r.sp()
	r.expect('(', "(")
	for {
		switch string(r.word(cName, "fetch modifier")) {
		case "CHANGEDSINCE":
			r.sp()
			a.ChangedSince = r.number(maxUint63)
			if a.ChangedSince == 0 {
				r.fail("CHANGEDSINCE must not be zero")
			}
			a.HasChangedSince = true
		case "VANISHED":
			a.Vanished = true
		default:
			r.fail("unknown fetch modifier")
		}
		if r.peek() == ')' {
			r.next()
			break
		}
		r.sp()
	}
	return a
}

func (r *Reader) fetchAtt() FetchItem {
	return r.fetchAttNamed(r.word(cName, "fetch item"))
}

// fetchAttNamed finishes a fetch-att whose upper-cased name was read.
func (r *Reader) fetchAttNamed(name []byte) FetchItem {
	var it FetchItem
	switch string(name) {
	case "UID":
		it.Kind = FetchUID
	case "FLAGS":
		it.Kind = FetchFlags
	case "INTERNALDATE":
		it.Kind = FetchInternalDate
	case "RFC822.SIZE":
		it.Kind = FetchRFC822Size
	case "ENVELOPE":
		it.Kind = FetchEnvelope
	case "BODYSTRUCTURE":
		it.Kind = FetchBodyStructure
	case "RFC822":
		it.Kind = FetchRFC822
	case "RFC822.HEADER":
		it.Kind = FetchRFC822Header
	case "RFC822.TEXT":
		it.Kind = FetchRFC822Text
	case "MODSEQ":
		it.Kind = FetchModSeq
	case "EMAILID":
		it.Kind = FetchEmailID
	case "THREADID":
		it.Kind = FetchThreadID
	case "SAVEDATE":
		it.Kind = FetchSaveDate
	case "PREVIEW":
		it.Kind = FetchPreview
		it.Lazy = r.previewMods()
	case "BODY":
		if r.peek() != '[' {
			it.Kind = FetchBody
			break
		}
		it.Kind = FetchBodySection
		it.Section = r.section()
		it.Partial = r.partial()
	case "BODY.PEEK":
		it.Kind, it.Peek = FetchBodySection, true
		it.Section = r.section()
		it.Partial = r.partial()
	case "BINARY", "BINARY.PEEK":
		it.Kind, it.Peek = FetchBinarySection, len(name) > len("BINARY")
		it.Section = r.sectionBinary()
		it.Partial = r.partial()
	case "BINARY.SIZE":
		it.Kind = FetchBinarySize
		it.Section = r.sectionBinary()
	default:
		r.fail("unknown fetch item")
	}
	return it
}

// previewMods parses PREVIEW's optional " (LAZY ...)" and reports
// whether LAZY was given. The look-ahead tells it from the FETCH
// modifiers that may follow a lone PREVIEW item ("PREVIEW (CHANGEDSINCE
// 1)"): RFC 8970 defines LAZY as the only preview modifier.
func (r *Reader) previewMods() bool {
	// Look ahead only as far as the line must reach: after " (" come at
	// least a character, ")" and CRLF, so six bytes never wait for input
	// the client has not sent.
	if r.peek() != ' ' {
		return false
	}
	if b, err := r.br.Peek(2); err != nil || b[1] != '(' {
		return false
	}
	if b, err := r.br.Peek(6); err != nil || !strings.EqualFold(string(b), " (LAZY") {
		return false
	}
	r.sp()
	r.next()
	for {
		if m := r.word(cName, "preview modifier"); string(m) != "LAZY" {
			r.fail("unknown preview modifier")
		}
		if r.peek() == ')' {
			r.next()
			return true
		}
		r.sp()
	}
}

// sectionPart parses nz-number *("." nz-number) and reports whether a
// "." followed by a non-digit (a section-text) comes next, in which case
// the "." has been consumed.
func (r *Reader) sectionPart() (part []int, more bool) {
	for {
		part = append(part, int(r.number(maxUint32)))
		if part[len(part)-1] == 0 {
			r.fail("section part must not be zero")
		}
		if r.peek() != '.' {
			return part, false
		}
		r.next()
		if c := r.peek(); c < '0' || c > '9' {
			return part, true
		}
	}
}

// section parses "[" [section-spec] "]".
func (r *Reader) section() Section {
	r.expect('[', "[")
	var s Section
	if r.peek() == ']' {
		r.next()
		return s
	}
	if c := r.peek(); c >= '0' && c <= '9' {
		var more bool
		s.Part, more = r.sectionPart()
		if !more {
			r.expect(']', "]")
			return s
		}
	}
	spec := r.word(cName, "section specifier")
	switch string(spec) {
	case "HEADER", "TEXT":
	case "MIME":
		if len(s.Part) == 0 {
			r.fail("MIME needs a section part")
		}
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		s.Specifier = string(spec)
		r.sp()
		r.expect('(', "(")
		for {
			s.Fields = append(s.Fields, r.astring())
			if r.peek() == ')' {
				r.next()
				break
			}
			r.sp()
		}
	default:
		r.fail("invalid section specifier")
	}
	if s.Specifier == "" {
		s.Specifier = string(spec)
	}
	r.expect(']', "]")
	return s
}

// sectionBinary parses "[" [section-part] "]".
func (r *Reader) sectionBinary() Section {
	r.expect('[', "[")
	var s Section
	if r.peek() != ']' {
		var more bool
		s.Part, more = r.sectionPart()
		if more {
			r.fail("invalid binary section")
		}
	}
	r.expect(']', "]")
	return s
}

// partial parses an optional "<" number "." nz-number ">".
func (r *Reader) partial() *Partial {
	if r.peek() != '<' {
		return nil
	}
	r.next()
	p := &Partial{Offset: uint32(r.number(maxUint32))}
	r.expect('.', ".")
	p.Count = r.nzNumber32()
	r.expect('>', ">")
	return p
}

func (r *Reader) storeArgs() *StoreArgs {
	r.sp()
	a := &StoreArgs{Set: r.seqSet()}
	r.sp()
	if r.peek() == '(' {
		r.next()
		if string(r.word(cName, "store modifier")) != "UNCHANGEDSINCE" {
			r.fail("unknown store modifier")
		}
		r.sp()
		a.UnchangedSince = r.number(maxUint63)
		a.HasUnchangedSince = true
		r.expect(')', ")")
		r.sp()
	}
	switch r.peek() {
	case '+':
		r.next()
		a.Op = StoreAdd
	case '-':
		r.next()
		a.Op = StoreRemove
	}
	switch string(r.word(cName, "FLAGS")) {
	case "FLAGS":
	case "FLAGS.SILENT":
		a.Silent = true
	default:
		r.fail("expected FLAGS")
	}
	r.sp()
	if r.peek() == '(' {
		a.Flags = r.flagList()
		return a
	}
	a.Flags = []string{r.flag()}
	for !r.atEOL() {
		r.sp()
		a.Flags = append(a.Flags, r.flag())
	}
	return a
}
