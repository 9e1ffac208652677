package imap

import "strings"

// MultiSearchArgs is ESEARCH (RFC 7377 MULTISEARCH): a search over the
// mailboxes its sources name.
type MultiSearchArgs struct {
	// Sources are the IN (...) filters; none means the selected mailbox.
	Sources []SearchSource
	Search  *SearchArgs
}

// SearchSource is one filter of ESEARCH IN (...).
type SearchSource struct {
	// Filter in lower case: selected, selected-delayed, inboxes, personal,
	// subscribed, subtree, subtree-one or mailboxes.
	Filter string
	// Mailboxes, as sent (not decoded), for subtree, subtree-one and
	// mailboxes.
	Mailboxes []string
}

// maxSearchSources bounds the filters and mailbox names of one ESEARCH.
const maxSearchSources = 1000

func (r *Reader) multiSearchArgs() *MultiSearchArgs {
	a := &MultiSearchArgs{}
	// " IN (" (five bytes) never waits for input the client has not
	// sent: search criteria and CRLF follow in any case.
	if b, err := r.br.Peek(5); err == nil && strings.EqualFold(string(b), " IN (") {
		r.sp()
		r.word(cAtom, "IN")
		r.sp()
		r.expect('(', "(")
		n := 0
		for {
			src := SearchSource{Filter: strings.ToLower(string(r.word(cAtom, "source filter")))}
			switch src.Filter {
			case "selected", "selected-delayed", "inboxes", "personal", "subscribed":
			case "subtree", "subtree-one", "mailboxes":
				r.sp()
				if r.peek() == '(' {
					r.next()
					for {
						src.Mailboxes = append(src.Mailboxes, r.astring())
						if r.peek() == ')' {
							r.next()
							break
						}
						r.sp()
						if n++; n > maxSearchSources {
							r.fail("too many mailboxes")
						}
					}
				} else {
					src.Mailboxes = []string{r.astring()}
				}
			default:
				r.fail("unknown source filter")
			}
			a.Sources = append(a.Sources, src)
			if n++; n > maxSearchSources {
				r.fail("too many source filters")
			}
			if r.peek() == ')' {
				r.next()
				break
			}
			r.sp()
		}
	}
	a.Search = r.searchArgs()
	return a
}
