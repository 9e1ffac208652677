package imap

// URLAUTH (RFC 4467) and its extended URLFETCH (RFC 5524).

// GenURLAuthArgs is GENURLAUTH url-rump mechanism ... (RFC 4467 §7).
type GenURLAuthArgs struct {
	Pairs []GenURLAuthPair
}

// GenURLAuthPair is one URL to authorize and the mechanism (upper case).
type GenURLAuthPair struct {
	URL       string
	Mechanism string
}

// ResetKeyArgs is RESETKEY [mailbox [mechanism ...]]. Mailbox is the raw
// astring (not yet decoded); HasMailbox tells the forms apart.
type ResetKeyArgs struct {
	Mailbox    string
	HasMailbox bool
	Mechanisms []string // upper case
}

// URLFetchArgs is URLFETCH url-fetch-arg ... (RFC 4467, RFC 5524).
type URLFetchArgs struct {
	URLs []URLFetchURL
}

// URLFetchURL is one URL of URLFETCH. Extended is the RFC 5524 form
// "(" url *(SP param) ")"; Params are upper case, as sent (the server
// checks them).
type URLFetchURL struct {
	URL      string
	Extended bool
	Params   []string
}

// Bounds on URLAUTH commands.
const (
	// MaxURLsPerCommand bounds the URLs of one GENURLAUTH or URLFETCH.
	MaxURLsPerCommand = 100
	// MaxURLLength bounds one URL (octets).
	MaxURLLength = 8192
	// maxURLFetchParams bounds the parameters of one extended URL.
	maxURLFetchParams = 8
)

// url reads one URL (astring) and checks its length.
func (r *Reader) url() string {
	b := r.astringBytes()
	if len(b) > MaxURLLength {
		r.fail("URL too long")
	}
	return string(b)
}

func (r *Reader) genURLAuthArgs() *GenURLAuthArgs {
	a := &GenURLAuthArgs{}
	for len(a.Pairs) == 0 || !r.atEOL() {
		if len(a.Pairs) == MaxURLsPerCommand {
			r.fail("too many URLs")
		}
		r.sp()
		u := r.url()
		r.sp()
		mech := string(r.word(cName, "URLAUTH mechanism"))
		a.Pairs = append(a.Pairs, GenURLAuthPair{URL: u, Mechanism: mech})
	}
	return a
}

func (r *Reader) resetKeyArgs() *ResetKeyArgs {
	a := &ResetKeyArgs{}
	if r.atEOL() {
		return a
	}
	r.sp()
	a.Mailbox, a.HasMailbox = r.astring(), true
	for !r.atEOL() {
		if len(a.Mechanisms) == MaxURLsPerCommand {
			r.fail("too many mechanisms")
		}
		r.sp()
		a.Mechanisms = append(a.Mechanisms, string(r.word(cName, "URLAUTH mechanism")))
	}
	return a
}

func (r *Reader) urlFetchArgs() *URLFetchArgs {
	a := &URLFetchArgs{}
	for len(a.URLs) == 0 || !r.atEOL() {
		if len(a.URLs) == MaxURLsPerCommand {
			r.fail("too many URLs")
		}
		r.sp()
		if r.peek() != '(' {
			a.URLs = append(a.URLs, URLFetchURL{URL: r.url()})
			continue
		}
		r.next()
		u := URLFetchURL{URL: r.url(), Extended: true}
		for r.peek() != ')' {
			if len(u.Params) == maxURLFetchParams {
				r.fail("too many URLFETCH parameters")
			}
			r.sp()
			u.Params = append(u.Params, string(r.word(cAtom, "URLFETCH parameter")))
		}
		r.next()
		a.URLs = append(a.URLs, u)
	}
	return a
}
