package imap

import (
	"bytes"
	"encoding/base64"
	"time"
)

// ReadCommand reads exactly one command including its final CRLF. It
// returns io.EOF when the connection ends cleanly between commands, a
// *ParseError for protocol errors (see ParseError for how to resume) and
// other errors (I/O, Continue failures) unchanged.
func (r *Reader) ReadCommand() (cmd *Command, err error) {
	r.n, r.lit, r.tag, r.done, r.begun = 0, 0, "", false, false
	r.paren, r.nest, r.decode = 0, 0, nil
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		a, ok := v.(abort)
		if !ok {
			panic(v)
		}
		cmd, err = nil, a.err
		if pe, ok := err.(*ParseError); ok {
			pe.Tag = r.tag
			if !pe.Fatal && !r.done {
				if derr := r.discardLine(); derr != nil {
					err = derr
				}
			}
		}
	}()
	// Tolerate empty lines between commands.
	for {
		c := r.peek()
		if c != '\r' && c != '\n' {
			break
		}
		r.crlf()
		r.n = 0
	}
	return r.command(), nil
}

func (r *Reader) command() *Command {
	t := r.token(cTag)
	if len(t) == 0 {
		r.fail("invalid tag")
	}
	r.tag = string(t)
	r.sp()
	cmd := &Command{Tag: r.tag}
	name := r.word(cAtom, "command name")
	if string(name) == "UID" {
		cmd.UID = true
		r.sp()
		name = r.word(cAtom, "command name")
		switch string(name) {
		case "FETCH", "STORE", "SEARCH", "COPY", "MOVE", "EXPUNGE", "SORT", "THREAD", "REPLACE":
		default:
			r.fail("unknown UID command")
		}
	}
	cmd.Name = commandName(name)
	switch cmd.Name {
	case "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE", "UNSELECT", "IDLE", "NAMESPACE",
		"UNAUTHENTICATE":
	case "EXPUNGE":
		if cmd.UID {
			r.sp()
			cmd.Args = &ExpungeArgs{Set: r.seqSet()}
		}
	case "AUTHENTICATE":
		cmd.Args = r.authenticate()
	case "LOGIN":
		r.sp()
		user := r.astring()
		r.sp()
		cmd.Args = &LoginArgs{Username: user, Password: r.astring()}
	case "ENABLE":
		a := &EnableArgs{}
		for !r.atEOL() {
			r.sp()
			a.Capabilities = append(a.Capabilities, string(r.word(cAtom, "capability")))
		}
		if len(a.Capabilities) == 0 {
			r.fail("ENABLE needs a capability")
		}
		cmd.Args = a
	case "SELECT", "EXAMINE":
		cmd.Args = r.selectArgs()
	case "CREATE":
		cmd.Args = r.createArgs()
	case "DELETE", "SUBSCRIBE", "UNSUBSCRIBE":
		r.sp()
		cmd.Args = &MailboxArgs{Mailbox: r.astring()}
	case "RENAME":
		r.sp()
		old := r.astring()
		r.sp()
		cmd.Args = &RenameArgs{Old: old, New: r.astring()}
	case "LIST":
		cmd.Args = r.listArgs()
	case "LSUB":
		r.sp()
		ref := r.astring()
		r.sp()
		cmd.Args = &ListArgs{LSub: true, Reference: ref, Patterns: []string{r.listMailbox()}}
	case "STATUS":
		cmd.Args = r.statusArgs()
	case "APPEND":
		cmd.Args = r.appendArgs()
	case "REPLACE": // RFC 8508
		cmd.Args = r.replaceArgs()
	case "SEARCH":
		cmd.Args = r.searchArgs()
	case "ESEARCH": // RFC 7377, parse_multisearch.go
		cmd.Args = r.multiSearchArgs()
	case "FETCH":
		cmd.Args = r.fetchArgs()
	case "STORE":
		cmd.Args = r.storeArgs()
	case "COPY", "MOVE":
		r.sp()
		set := r.seqSet()
		r.sp()
		cmd.Args = &CopyArgs{Set: set, Mailbox: r.astring()}
	case "ID":
		cmd.Args = r.idArgs()
	case "GETQUOTA", "GETQUOTAROOT":
		cmd.Args = r.quotaArgs(cmd.Name)
	case "SORT":
		cmd.Args = r.sortArgs()
	case "CANCELUPDATE":
		cmd.Args = r.cancelUpdateArgs()
	case "THREAD":
		cmd.Args = r.threadArgs()
	case "NOTIFY": // RFC 5465, parse_notify.go
		cmd.Args = r.notifyArgs()
	case "GETMETADATA": // RFC 5464, parse_metadata.go
		cmd.Args = r.getMetadataArgs()
	case "SETMETADATA":
		cmd.Args = r.setMetadataArgs()
	case "SETACL", "DELETEACL", "GETACL", "LISTRIGHTS", "MYRIGHTS": // RFC 4314, parse_acl.go
		cmd.Args = r.aclArgs(cmd.Name)
	case "SETQUOTA": // RFC 9208
		cmd.Args = r.setQuotaArgs()
	case "GENURLAUTH": // RFC 4467, parse_urlauth.go
		cmd.Args = r.genURLAuthArgs()
	case "RESETKEY":
		cmd.Args = r.resetKeyArgs()
	case "URLFETCH":
		cmd.Args = r.urlFetchArgs()
	case "COMPRESS": // RFC 4978
		r.sp()
		cmd.Args = &CompressArgs{Mechanism: string(r.word(cAtom, "compression mechanism"))}
	default:
		r.fail("unknown command")
	}
	r.end()
	return cmd
}

// commandNames lists the commands ReadCommand knows; commandName maps a
// name to its constant spelling without allocating.
var commandNames = []string{
	"CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE", "UNSELECT",
	"IDLE", "NAMESPACE", "EXPUNGE", "AUTHENTICATE", "LOGIN", "ENABLE",
	"SELECT", "EXAMINE", "CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE",
	"RENAME", "LIST", "LSUB", "STATUS", "APPEND", "SEARCH", "FETCH", "STORE",
	"COPY", "MOVE", "ID",
	"GETQUOTA", "GETQUOTAROOT", "NOTIFY", "SORT", "THREAD", "CANCELUPDATE",
	"UNAUTHENTICATE", "REPLACE",
	"GETMETADATA", "SETMETADATA",
	"COMPRESS", "ESEARCH",
	"SETACL", "DELETEACL", "GETACL", "LISTRIGHTS", "MYRIGHTS", "SETQUOTA",
	"GENURLAUTH", "RESETKEY", "URLFETCH",
}

func commandName(b []byte) string {
	for _, n := range commandNames {
		if string(b) == n {
			return n
		}
	}
	return ""
}

func (r *Reader) authenticate() *AuthenticateArgs {
	r.sp()
	a := &AuthenticateArgs{Mechanism: string(r.word(cAtom, "SASL mechanism"))}
	if r.atEOL() {
		return a
	}
	r.sp()
	t := r.token(cB64)
	if len(t) == 0 {
		r.fail("expected initial response")
	}
	a.HasInitialResponse = true
	if len(t) == 1 && t[0] == '=' {
		a.InitialResponse = []byte{}
		return a
	}
	dec := make([]byte, base64.StdEncoding.DecodedLen(len(t)))
	k, err := base64.StdEncoding.Strict().Decode(dec, t)
	if err != nil {
		r.fail("invalid base64 in initial response")
	}
	a.InitialResponse = dec[:k]
	return a
}

func (r *Reader) selectArgs() *SelectArgs {
	r.sp()
	a := &SelectArgs{Mailbox: r.astring()}
	if r.atEOL() {
		return a
	}
	r.sp()
	r.expect('(', "(")
	for r.peek() != ')' {
		switch string(r.word(cAtom, "select parameter")) {
		case "CONDSTORE":
			a.CondStore = true
		case "QRESYNC":
			if a.QResync != nil {
				r.fail("duplicate QRESYNC")
			}
			r.sp()
			a.QResync = r.qresync()
		default:
			r.fail("unknown select parameter")
		}
		if r.peek() == ')' {
			break
		}
		r.sp()
	}
	r.next()
	return a
}

// qresync parses "(" uidvalidity SP modseq [SP known-uids]
// [SP "(" seq-set SP uid-set ")"] ")".
func (r *Reader) qresync() *QResyncParams {
	r.expect('(', "(")
	q := &QResyncParams{}
	q.UIDValidity = r.nzNumber32()
	r.sp()
	q.ModSeq = r.number(maxUint63)
	if q.ModSeq == 0 {
		r.fail("QRESYNC mod-sequence must not be zero")
	}
	if r.peek() == ' ' {
		r.next()
		if r.peek() != '(' {
			s := r.staticSet()
			q.KnownUIDs = &s
			if r.peek() == ' ' {
				r.next()
			}
		}
		if r.peek() == '(' {
			r.next()
			seqs := r.staticSet()
			r.sp()
			uids := r.staticSet()
			r.expect(')', ")")
			q.SeqMatchSeq, q.SeqMatchUID = &seqs, &uids
		}
	}
	r.expect(')', ")")
	return q
}

// staticSet parses a sequence set that must not use "*" or "$".
func (r *Reader) staticSet() NumSet {
	s := r.seqSet()
	if s.Saved || s.Dynamic() {
		r.fail("* and $ are not allowed in this sequence set")
	}
	return s
}

func (r *Reader) createArgs() *CreateArgs {
	r.sp()
	a := &CreateArgs{Mailbox: r.astring()}
	if r.atEOL() {
		return a
	}
	r.sp()
	r.expect('(', "(")
	for r.peek() != ')' {
		switch string(r.word(cAtom, "create parameter")) {
		case "USE":
			r.sp()
			a.SpecialUse = append(a.SpecialUse, r.flagList()...)
		default:
			r.fail("unknown create parameter")
		}
		if r.peek() == ')' {
			break
		}
		r.sp()
	}
	r.next()
	return a
}

func (r *Reader) listArgs() *ListArgs {
	a := &ListArgs{}
	r.sp()
	if r.peek() == '(' {
		a.SelectOptions = r.atomList(true)
		recursive, base := false, false
		for _, o := range a.SelectOptions {
			switch o {
			case "RECURSIVEMATCH":
				recursive = true
			case "SUBSCRIBED", "REMOTE", "SPECIAL-USE":
				base = true
			default:
				r.fail("unknown LIST selection option")
			}
		}
		if recursive && !base {
			r.fail("RECURSIVEMATCH needs another selection option")
		}
		r.sp()
	}
	a.Reference = r.astring()
	r.sp()
	if r.peek() == '(' {
		r.next()
		for {
			a.Patterns = append(a.Patterns, r.listMailbox())
			if r.peek() == ')' {
				r.next()
				break
			}
			r.sp()
		}
	} else {
		a.Patterns = []string{r.listMailbox()}
	}
	if r.atEOL() {
		return a
	}
	r.sp()
	if string(r.word(cAtom, "RETURN")) != "RETURN" {
		r.fail("expected RETURN")
	}
	r.sp()
	r.expect('(', "(")
	a.ReturnOptions = []string{}
	for r.peek() != ')' {
		opt := string(r.word(cAtom, "return option"))
		switch opt {
		case "SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "MYRIGHTS": // MYRIGHTS: RFC 8440
		case "STATUS":
			r.sp()
			a.StatusItems = r.statusItems()
		case "METADATA":
			if a.Metadata != nil {
				r.fail("METADATA given twice")
			}
			r.sp()
			a.Metadata = r.listMetadata()
		default:
			r.fail("unknown LIST return option")
		}
		a.ReturnOptions = append(a.ReturnOptions, opt)
		if r.peek() == ')' {
			break
		}
		r.sp()
	}
	r.next()
	return a
}

func (r *Reader) statusArgs() *StatusArgs {
	r.sp()
	a := &StatusArgs{Mailbox: r.astring()}
	r.sp()
	a.Items = r.statusItems()
	return a
}

func (r *Reader) statusItems() []string {
	items := r.atomList(false)
	for _, it := range items {
		switch it {
		case "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE",
			"RECENT", "HIGHESTMODSEQ", "APPENDLIMIT", "MAILBOXID", "DELETED-STORAGE":
		default:
			r.fail("unknown status item")
		}
	}
	return items
}

func (r *Reader) appendArgs() *AppendArgs {
	r.sp()
	a := &AppendArgs{Mailbox: r.astring()}
	for {
		r.sp()
		a.Messages = append(a.Messages, r.appendMessage())
		if r.atEOL() {
			return a
		}
	}
}

// appendMessage parses one message of APPEND or REPLACE (RFC 4466
// append-opts SP append-data, after its leading SP): [flag-list SP]
// [date-time SP] (literal / literal8 / UTF8 (literal8) / CATENATE (...)).
func (r *Reader) appendMessage() AppendMessage {
	var m AppendMessage
	if r.peek() == '(' {
		m.Flags = r.flagList()
		r.sp()
	}
	if r.peek() == '"' {
		m.Date = r.dateTime()
		r.sp()
	}
	switch r.peek() {
	case '{', '~':
		m.Literal, m.Binary = r.literal(r.opts.MaxLiteral, true)
		return m
	}
	switch string(r.word(cAtom, "message literal")) {
	case "CATENATE":
		r.sp()
		m.Parts = r.catenateParts()
	case "UTF8":
		r.sp()
		r.expect('(', "(")
		if r.peek() != '~' {
			r.fail("expected literal8")
		}
		m.Literal, _ = r.literal(r.opts.MaxLiteral, true)
		m.UTF8, m.Binary = true, true
		r.expect(')', ")")
	default:
		r.fail("expected message literal")
	}
	return m
}

// replaceArgs parses REPLACE / UID REPLACE (RFC 8508): seq-number SP
// mailbox SP append-message, one message only.
func (r *Reader) replaceArgs() *ReplaceArgs {
	r.sp()
	a := &ReplaceArgs{}
	if r.peek() == '*' {
		r.next() // Num 0 stands for "*"
	} else {
		a.Num = r.nzNumber32()
	}
	r.sp()
	a.Mailbox = r.astring()
	r.sp()
	a.Message = r.appendMessage()
	return a
}

var monthNames = [12]string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}

func parseMonth(b []byte) (time.Month, bool) {
	if len(b) != 3 {
		return 0, false
	}
	var u [3]byte
	copy(u[:], b)
	upper(u[:])
	for i, m := range monthNames {
		if string(u[:]) == m {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}

func digits(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// parseDateText parses d[d]-Mon-yyyy.
func parseDateText(b []byte) (time.Time, bool) {
	i := bytes.IndexByte(b, '-')
	if i < 1 || i > 2 {
		return time.Time{}, false
	}
	day, ok := digits(b[:i])
	if !ok {
		return time.Time{}, false
	}
	rest := b[i+1:]
	if len(rest) != 8 || rest[3] != '-' {
		return time.Time{}, false
	}
	mon, ok := parseMonth(rest[:3])
	if !ok {
		return time.Time{}, false
	}
	year, ok := digits(rest[4:])
	if !ok {
		return time.Time{}, false
	}
	t := time.Date(year, mon, day, 0, 0, 0, 0, time.UTC)
	if day < 1 || t.Day() != day {
		return time.Time{}, false
	}
	return t, true
}

// date parses date: date-text or DQUOTE date-text DQUOTE.
func (r *Reader) date() time.Time {
	var b []byte
	if r.peek() == '"' {
		b = r.quotedBytes()
	} else {
		b = r.token(cName)
	}
	t, ok := parseDateText(b)
	if !ok {
		r.fail("invalid date")
	}
	return t
}

// dateTime parses the APPEND date-time
// "dd-Mon-yyyy hh:mm:ss +zzzz" (a leading space or single-digit day is
// accepted for the day).
func (r *Reader) dateTime() time.Time {
	b := r.quotedBytes()
	if len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 || len(b)-sp != 15 {
		r.fail("invalid date-time")
	}
	day, ok := parseDateText(b[:sp])
	tm := b[sp+1:] // hh:mm:ss +zzzz
	if !ok || tm[2] != ':' || tm[5] != ':' || tm[8] != ' ' || (tm[9] != '+' && tm[9] != '-') {
		r.fail("invalid date-time")
	}
	hh, ok1 := digits(tm[0:2])
	mm, ok2 := digits(tm[3:5])
	ss, ok3 := digits(tm[6:8])
	zh, ok4 := digits(tm[10:12])
	zm, ok5 := digits(tm[12:14])
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || hh > 23 || mm > 59 || ss > 60 || zm > 59 {
		r.fail("invalid date-time")
	}
	off := (zh*60 + zm) * 60
	if tm[9] == '-' {
		off = -off
	}
	return time.Date(day.Year(), day.Month(), day.Day(), hh, mm, ss, 0, time.FixedZone("", off))
}

func (r *Reader) idArgs() *IDArgs {
	r.sp()
	a := &IDArgs{}
	if r.peek() != '(' {
		if string(r.word(cAtom, "NIL")) != "NIL" {
			r.fail("expected NIL or parameter list")
		}
		return a
	}
	r.next()
	a.Params = map[string]*string{}
	for r.peek() != ')' {
		key := string(r.stringBytes())
		r.sp()
		a.Params[key] = r.nstring()
		if r.peek() == ')' {
			break
		}
		r.sp()
	}
	r.next()
	return a
}
