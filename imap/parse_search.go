package imap

import (
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/unicode"
)

// BadCharsetMsg prefixes the ParseError message for an unsupported SEARCH
// charset; the server answers "tag NO " + Msg.
const BadCharsetMsg = "[BADCHARSET (UTF-8 US-ASCII)]"

// charsetDecoder returns a function converting text in the named charset
// to UTF-8, nil for UTF-8 and US-ASCII, or ok=false when unsupported.
func charsetDecoder(name string) (func([]byte) ([]byte, error), bool) {
	if strings.EqualFold(name, "UTF-8") || strings.EqualFold(name, "US-ASCII") {
		return nil, true
	}
	var enc encoding.Encoding
	if e, err := ianaindex.IANA.Encoding(name); err == nil && e != nil {
		enc = e
	} else if e, err := htmlindex.Get(name); err == nil && e != nil {
		enc = e
	}
	if enc == nil {
		return nil, false
	}
	if enc == unicode.UTF8 {
		return nil, true
	}
	return func(b []byte) ([]byte, error) { return enc.NewDecoder().Bytes(b) }, true
}

func (r *Reader) searchArgs() *SearchArgs {
	a := &SearchArgs{}
	r.sp()
	// RETURN and CHARSET come first. Read a leading word and, unless it
	// is one of those, hand it on as the first search key's name.
	var name []byte
	if isAlpha(r.peek()) {
		name = r.word(cAtom, "search key")
	}
	if string(name) == "RETURN" {
		r.sp()
		a.HasReturn = true
		a.Return, a.Partial = r.returnOptions("SEARCH")
		r.sp()
		name = nil
		if isAlpha(r.peek()) {
			name = r.word(cAtom, "search key")
		}
	}
	if string(name) == "CHARSET" {
		r.sp()
		var cs []byte
		if r.peek() == '"' {
			cs = r.quotedBytes()
		} else {
			cs = r.token(cAtom)
		}
		a.Charset = string(cs)
		dec, ok := charsetDecoder(a.Charset)
		if !ok {
			r.fail("%s unsupported charset", BadCharsetMsg)
		}
		r.decode = dec
		r.sp()
		name = nil
	}
	var keys []*SearchKey
	if name != nil {
		keys = append(keys, r.searchKeyNamed(name))
		if !r.atEOL() {
			r.sp()
		}
	}
	for !r.atEOL() || len(keys) == 0 {
		keys = append(keys, r.searchKey())
		if r.atEOL() {
			break
		}
		r.sp()
	}
	if len(keys) == 1 {
		a.Key = keys[0]
	} else {
		a.Key = &SearchKey{Op: SearchAnd, Children: keys}
	}
	return a
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// searchString parses an astring argument and decodes it from the
// command's charset.
func (r *Reader) searchString() string {
	b := r.astringBytes()
	if r.decode != nil {
		d, err := r.decode(b)
		if err != nil {
			r.fail("string not valid in the given charset")
		}
		return string(d)
	}
	return string(b)
}

func (r *Reader) searchKey() *SearchKey {
	c := r.peek()
	switch {
	case c == '(':
		r.paren++
		if r.paren > r.opts.MaxDepth {
			r.fail("search key nesting too deep")
		}
		r.next()
		k := &SearchKey{Op: SearchAnd}
		for {
			k.Children = append(k.Children, r.searchKey())
			if r.peek() == ')' {
				r.next()
				break
			}
			r.sp()
		}
		r.paren--
		if len(k.Children) == 1 {
			return k.Children[0]
		}
		return k
	case c == '*' || c == '$' || ('0' <= c && c <= '9'):
		return &SearchKey{Op: SearchSeqSet, Set: r.seqSet()}
	}
	return r.searchKeyNamed(r.word(cAtom, "search key"))
}

// searchKeyNamed parses the rest of a search key whose upper-cased name
// has been read.
func (r *Reader) searchKeyNamed(name []byte) *SearchKey {
	k := &SearchKey{}
	switch op := SearchKeyOp(name); op {
	case SearchAll, SearchAnswered, SearchDeleted, SearchDraft, SearchFlagged,
		SearchSeen, SearchRecent, SearchNew, SearchOld, SearchUnanswered,
		SearchUndeleted, SearchUndraft, SearchUnflagged, SearchUnseen,
		SearchSaveDateSupported:
		k.Op = op
	case SearchKeyword, SearchUnkeyword:
		k.Op = op
		r.sp()
		k.Str = r.flag()
		if k.Str[0] == '\\' {
			r.fail("keyword expected")
		}
	case SearchBcc, SearchCc, SearchFrom, SearchTo, SearchSubject, SearchBody, SearchText:
		k.Op = op
		r.sp()
		k.Str = r.searchString()
	case SearchHeader:
		k.Op = op
		r.sp()
		k.Field = r.astring()
		r.sp()
		k.Str = r.searchString()
	case SearchBefore, SearchOn, SearchSince, SearchSentBefore, SearchSentOn,
		SearchSentSince, SearchSaveDateBefore, SearchSaveDateOn, SearchSaveDateSince:
		k.Op = op
		r.sp()
		k.Date = r.date()
	case SearchLarger, SearchSmaller:
		k.Op = op
		r.sp()
		k.Num = r.number(maxUint63)
	case SearchOlder, SearchYounger:
		k.Op = op
		r.sp()
		k.Num = r.number(maxUint32)
		if k.Num == 0 {
			r.fail("interval must not be zero")
		}
	case SearchModSeq:
		k.Op = op
		r.sp()
		if r.peek() == '"' {
			// entry-name SP entry-type-req: validated, then ignored.
			entry := r.quotedBytes()
			if !strings.HasPrefix(strings.ToLower(string(entry)), "/flags/") {
				r.fail("invalid MODSEQ entry name")
			}
			r.sp()
			switch string(r.word(cAtom, "entry type")) {
			case "PRIV", "SHARED", "ALL":
			default:
				r.fail("invalid MODSEQ entry type")
			}
			r.sp()
		}
		k.Num = r.number(maxUint63)
	case SearchEmailID, SearchThreadID:
		k.Op = op
		r.sp()
		id := r.astringBytes()
		if len(id) == 0 || len(id) > 255 {
			r.fail("invalid object id")
		}
		for _, c := range id {
			if !(c == '_' || c == '-' || charClass[c]&cB64 != 0 && c != '+' && c != '/' && c != '=') {
				r.fail("invalid object id")
			}
		}
		k.Str = string(id)
	case SearchUID:
		k.Op = op
		r.sp()
		k.Set = r.seqSet()
	case SearchNot, SearchFuzzy:
		k.Op = op
		r.sp()
		k.Children = []*SearchKey{r.nestedKey()}
	case SearchOr:
		k.Op = op
		r.sp()
		left := r.nestedKey()
		r.sp()
		k.Children = []*SearchKey{left, r.nestedKey()}
	default:
		r.fail("unknown search key")
	}
	return k
}

func (r *Reader) nestedKey() *SearchKey {
	r.nest++
	if r.nest > maxKeyNesting {
		r.fail("search key nesting too deep")
	}
	k := r.searchKey()
	r.nest--
	return k
}
