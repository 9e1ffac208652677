package imap

// SortCriterion is one SORT key (RFC 5256 §3, RFC 5957): Key is upper
// case, one of ARRIVAL CC DATE FROM SIZE SUBJECT TO DISPLAYFROM DISPLAYTO.
type SortCriterion struct {
	Key     string
	Reverse bool
}

// SortArgs is [UID] SORT [RETURN (opts)] (criteria) charset search-keys
// (RFC 5256, ESORT RFC 5267).
type SortArgs struct {
	Return    []string      // upper case: MIN MAX COUNT ALL SAVE; nil when no RETURN
	HasReturn bool          // RETURN given (ESORT form), possibly with an empty list
	Partial   *PartialRange // RETURN (PARTIAL range), RFC 5267 §4.4
	Criteria  []SortCriterion
	Charset   string
	Key       *SearchKey
}

// ThreadArgs is [UID] THREAD algorithm charset search-keys (RFC 5256).
type ThreadArgs struct {
	Algorithm string // upper case: ORDEREDSUBJECT or REFERENCES
	Charset   string
	Key       *SearchKey
}

func (r *Reader) sortArgs() *SortArgs {
	a := &SortArgs{}
	r.sp()
	if r.peek() != '(' {
		if string(r.word(cAtom, "RETURN")) != "RETURN" {
			r.fail("sort criteria expected")
		}
		r.sp()
		a.HasReturn = true
		a.Return, a.Partial = r.returnOptions("SORT")
		r.sp()
	}
	r.expect('(', "(")
	for {
		name := r.word(cAtom, "sort key")
		c := SortCriterion{}
		if string(name) == "REVERSE" {
			c.Reverse = true
			r.sp()
			name = r.word(cAtom, "sort key")
		}
		switch k := string(name); k {
		case "ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO", "RELEVANCY":
			c.Key = k
		default:
			r.fail("unknown sort key")
		}
		a.Criteria = append(a.Criteria, c)
		if r.peek() == ')' {
			r.next()
			break
		}
		r.sp()
	}
	r.sp()
	a.Charset, a.Key = r.charsetAndKeys()
	return a
}

func (r *Reader) threadArgs() *ThreadArgs {
	a := &ThreadArgs{}
	r.sp()
	switch alg := string(r.word(cAtom, "threading algorithm")); alg {
	case "ORDEREDSUBJECT", "REFERENCES":
		a.Algorithm = alg
	default:
		r.fail("unknown threading algorithm")
	}
	r.sp()
	a.Charset, a.Key = r.charsetAndKeys()
	return a
}

// charsetAndKeys parses the mandatory charset and the search keys that end
// SORT and THREAD.
func (r *Reader) charsetAndKeys() (string, *SearchKey) {
	var cs []byte
	if r.peek() == '"' {
		cs = r.quotedBytes()
	} else {
		cs = r.token(cAtom)
	}
	if len(cs) == 0 {
		r.fail("charset expected")
	}
	charset := string(cs)
	dec, ok := charsetDecoder(charset)
	if !ok {
		r.fail("%s unsupported charset", BadCharsetMsg)
	}
	r.decode = dec
	r.sp()
	var keys []*SearchKey
	for {
		keys = append(keys, r.searchKey())
		if r.atEOL() {
			break
		}
		r.sp()
	}
	if len(keys) == 1 {
		return charset, keys[0]
	}
	return charset, &SearchKey{Op: SearchAnd, Children: keys}
}
