package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/store"
)

// URLAUTH (RFC 4467) and extended URLFETCH (RFC 5524, URLAUTH=BINARY).
//
// GENURLAUTH signs an IMAP URL (RFC 5092) naming a message or part in one
// of the user's own mailboxes; URLFETCH (and APPEND CATENATE, catenate.go)
// resolve signed URLs for whichever session the URL's access identifier
// admits. The INTERNAL mechanism's token is "01" (the algorithm's
// version) followed by the hex HMAC-SHA256 of the rump URL (everything
// before ":internal:") under the mailbox access key: 32 random bytes per
// mailbox, kept as the mailbox's server-private METADATA entry
// urlauthKeyEntry, which GETMETADATA, LIST-METADATA and SETMETADATA never
// show or touch (metadata.go). RESETKEY replaces it. A URL whose key,
// mailbox, message, access or expiry does not check out fetches as NIL;
// which of these failed is never told.
//
// The access key table is the owner's: only URLs on the user's own
// mailboxes can be signed (not on mailboxes shared by others), and the
// owner always holds every right on them, so "the URL's user can still
// read it" is the mailbox still existing with the same UIDVALIDITY.

const urlauthCapabilities = " URLAUTH URLAUTH=BINARY"

// urlauthKeyEntry is the METADATA entry holding a mailbox's access key.
const urlauthKeyEntry = "/private/vendor/tern/urlauth-key"

// serverPrivateEntry reports whether a (normalised) METADATA entry is
// the server's own, hidden from clients.
func serverPrivateEntry(name string) bool {
	return name == urlauthKeyEntry || strings.HasPrefix(name, urlauthKeyEntry+"/")
}

// withoutServerPrivate drops server-private entries from a metadata answer.
func withoutServerPrivate(entries []store.MetadataEntry) []store.MetadataEntry {
	return slices.DeleteFunc(entries, func(e store.MetadataEntry) bool { return serverPrivateEntry(e.Name) })
}

const (
	urlauthKeySize    = 32
	urlauthMechanism  = "INTERNAL"
	urlauthTokenV1    = "01"               // version prefix of INTERNAL tokens
	urlauthMechOutput = ":internal:"       // as RFC 4467's examples spell it
	urlauthAccessAny  = "anonymous"        // access identifiers
	urlauthAccessAuth = "authuser"         //
	urlauthURLAuth    = ";urlauth="        // lower-cased markers searched in URLs
	urlauthExpire     = ";expire="         //
	urlmechCode       = "URLMECH INTERNAL" // RESETKEY's response code
)

// urlauthKeyMu serialises creating keys, so two sessions signing URLs
// for the same mailbox at once agree on one key. Creation is rare.
var urlauthKeyMu sync.Mutex

// urlauthDummyKey is used to compute a token when the URL's mailbox or
// key does not exist, so failures take as long as mismatches (RFC 4467 §6).
var urlauthDummyKey = func() []byte {
	k := make([]byte, urlauthKeySize)
	rand.Read(k)
	return k
}()

// authURL is a URLAUTH URL: the message or part it names, its owner (the
// user in the server part), the rump that is signed, the access
// identifier, the expiry and, for a full URL, mechanism and token.
type authURL struct {
	imapURL
	owner      string
	rump       string
	access     string // "anonymous", "authuser", "user" or "submit"
	accessUser string // the userid of "user+" and "submit+"
	expire     time.Time
	mech       string // upper case; "" in a rump
	token      string
}

// hasURLAuth reports whether raw carries a ";URLAUTH=" component.
func hasURLAuth(raw string) bool {
	return strings.Contains(strings.ToLower(raw), urlauthURLAuth)
}

// parseAuthURL parses an absolute URLAUTH URL (RFC 4467 §9 authimapurl):
// a rump (ending with the access identifier) when full is false, else a
// URL with ":mechanism:token".
func parseAuthURL(raw string, full bool) (authURL, bool) {
	var u authURL
	if len(raw) > imap.MaxURLLength || !hasIMAPScheme(raw) {
		return u, false
	}
	lower := strings.ToLower(raw)
	i := strings.LastIndex(lower, urlauthURLAuth)
	if i < 0 {
		return u, false
	}
	tail := raw[i+len(urlauthURLAuth):]
	access, rest, hasMech := strings.Cut(tail, ":")
	if hasMech != full || !u.parseAccess(access) {
		return u, false
	}
	u.rump = raw[:i+len(urlauthURLAuth)+len(access)]
	if full {
		mech, token, ok := strings.Cut(rest, ":")
		if !ok || mech == "" || !validToken(token) {
			return u, false
		}
		u.mech, u.token = strings.ToUpper(mech), strings.ToLower(token)
	}
	prefix := raw[:i]
	if j := strings.LastIndex(lower[:i], urlauthExpire); j >= 0 && !strings.Contains(prefix[j:], "/") {
		t, err := time.Parse(time.RFC3339, prefix[j+len(urlauthExpire):])
		if err != nil {
			return u, false
		}
		u.expire, prefix = t, prefix[:j]
	}
	user, hasUser, path, ok := splitIMAPServer(prefix)
	if !ok || !hasUser {
		return u, false // RFC 4467 §7: the owner's userid is mandatory
	}
	u.owner = user
	if u.imapURL, ok = parseURLPath(path, ""); !ok {
		return u, false
	}
	return u, true
}

// parseAccess checks an access identifier (RFC 4467 §9 access).
func (u *authURL) parseAccess(a string) bool {
	la := strings.ToLower(a)
	switch {
	case la == urlauthAccessAny || la == urlauthAccessAuth:
		u.access = la
		return true
	case strings.HasPrefix(la, "user+"), strings.HasPrefix(la, "submit+"):
		kind, enc, _ := strings.Cut(a, "+")
		user, ok := pctDecode(enc)
		if !ok || user == "" || strings.ContainsAny(enc, ":/;@?#") {
			return false
		}
		u.access, u.accessUser = strings.ToLower(kind), user
		return true
	}
	return false
}

// validToken checks enc-urlauth: at least 32 hex digits.
func validToken(t string) bool {
	if len(t) < 32 || len(t) > 256 {
		return false
	}
	_, err := hex.DecodeString(t)
	return err == nil && len(t)%2 == 0
}

// urlauthToken is the INTERNAL token of rump under key.
func urlauthToken(key []byte, rump string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(rump))
	return urlauthTokenV1 + hex.EncodeToString(mac.Sum(nil))
}

// tokenMatches compares a URL's token with the one computed under key in
// constant time.
func tokenMatches(key []byte, u *authURL) bool {
	return hmac.Equal([]byte(urlauthToken(key, u.rump)), []byte(u.token))
}

// accessAllowed reports whether this session may use a URL with u's
// access identifier (RFC 4467 §3). Every session here is logged in, so
// "anonymous" and "authuser" admit it; "submit+" admits the users
// configured as submission servers (Config.SubmitUsers).
func (c *conn) accessAllowed(u *authURL) bool {
	switch u.access {
	case urlauthAccessAny, urlauthAccessAuth:
		return true
	case "user":
		return u.accessUser == c.user
	case "submit":
		return slices.Contains(c.srv.cfg.SubmitUsers, c.user)
	}
	return false
}

// mailboxKey reads the access key of mailbox in acct; nil if none.
func mailboxKey(ctx context.Context, acct store.Account, mailbox string) ([]byte, error) {
	got, err := acct.GetMetadata(ctx, mailbox, []string{urlauthKeyEntry}, store.MetadataDepth0)
	if err != nil {
		return nil, fmt.Errorf("urlauth: read key of %q: %w", mailbox, err)
	}
	for _, e := range got {
		if e.Name == urlauthKeyEntry && len(e.Value) == urlauthKeySize {
			return e.Value, nil
		}
	}
	return nil, nil
}

// newMailboxKey stores a fresh access key for mailbox and returns it.
func newMailboxKey(ctx context.Context, acct store.Account, mailbox string) ([]byte, error) {
	key := make([]byte, urlauthKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("urlauth: random key: %w", err)
	}
	if err := acct.SetMetadata(ctx, mailbox, []store.MetadataEntry{{Name: urlauthKeyEntry, Value: key}}); err != nil {
		return nil, fmt.Errorf("urlauth: store key of %q: %w", mailbox, err)
	}
	return key, nil
}

// mailboxKeyOrNew returns mailbox's key, creating one if it has none
// (RFC 4467 §7: GENURLAUTH needs no RESETKEY first).
func mailboxKeyOrNew(ctx context.Context, acct store.Account, mailbox string) ([]byte, error) {
	if key, err := mailboxKey(ctx, acct, mailbox); err != nil || key != nil {
		return key, err
	}
	urlauthKeyMu.Lock()
	defer urlauthKeyMu.Unlock()
	if key, err := mailboxKey(ctx, acct, mailbox); err != nil || key != nil {
		return key, err
	}
	return newMailboxKey(ctx, acct, mailbox)
}

// ownMailbox looks up one of the session user's own mailboxes for
// URLAUTH; names in the "Other Users" namespace are not the user's.
func (c *conn) ownMailbox(ctx context.Context, name string) (store.MailboxInfo, error) {
	if _, _, shared := splitShared(name); shared {
		return store.MailboxInfo{}, errNoMailbox
	}
	return c.acct.Mailbox(ctx, name)
}

// cmdGenURLAuth signs each URL (RFC 4467 §7 GENURLAUTH). Every URL is
// checked before any key is made: a bad one fails the command with BAD.
func cmdGenURLAuth(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.GenURLAuthArgs)
	urls := make([]authURL, len(args.Pairs))
	for i, p := range args.Pairs {
		if p.Mechanism != urlauthMechanism {
			return bad("", "Unsupported URLAUTH mechanism")
		}
		u, ok := parseAuthURL(p.URL, false)
		switch {
		case !ok:
			return bad("", "Invalid URL: an absolute IMAP URL with user, UID and ;URLAUTH=access is needed")
		case u.owner != c.user:
			return bad("", "The URL's user must be the logged-in user")
		}
		info, err := c.ownMailbox(ctx, u.mailbox)
		if isNoMailbox(err) || (err == nil && (info.NoSelect || (u.uidValidity != 0 && u.uidValidity != info.UIDValidity))) {
			return bad("", "The URL's mailbox does not exist")
		}
		if err != nil {
			return fmt.Errorf("genurlauth: mailbox %q: %w", u.mailbox, err)
		}
		urls[i] = u
	}
	c.w.WriteString("* GENURLAUTH")
	for _, u := range urls {
		key, err := mailboxKeyOrNew(ctx, c.acct, u.mailbox)
		if err != nil {
			return metadataErr(err, u.mailbox)
		}
		c.w.SP()
		c.w.String(u.rump + urlauthMechOutput + urlauthToken(key, u.rump))
	}
	c.w.CRLF()
	return nil
}

// cmdResetKey replaces a mailbox's access key or, without a mailbox,
// removes all of the user's keys (RFC 4467 §7 RESETKEY).
func cmdResetKey(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.ResetKeyArgs)
	for _, m := range args.Mechanisms {
		if m != urlauthMechanism {
			return bad("", "Unsupported URLAUTH mechanism")
		}
	}
	if !args.HasMailbox {
		if err := c.removeAllKeys(ctx); err != nil {
			return err
		}
		return c.okCode(ctx, "", "All keys removed")
	}
	name, err := c.mailboxName(args.Mailbox)
	if err != nil {
		return err
	}
	info, err := c.ownMailbox(ctx, name)
	if err == nil && info.NoSelect {
		err = store.ErrNoSelect
	}
	if err != nil {
		return storeErr(err, name)
	}
	urlauthKeyMu.Lock()
	_, err = newMailboxKey(ctx, c.acct, info.Name)
	urlauthKeyMu.Unlock()
	if err != nil {
		return metadataErr(err, name)
	}
	return c.okCode(ctx, urlmechCode, "Key replaced")
}

// removeAllKeys removes the access key of every mailbox of the user.
func (c *conn) removeAllKeys(ctx context.Context) error {
	boxes, err := c.acct.Mailboxes(ctx)
	if err != nil {
		return fmt.Errorf("resetkey: list mailboxes: %w", err)
	}
	urlauthKeyMu.Lock()
	defer urlauthKeyMu.Unlock()
	for _, b := range boxes {
		if b.NoSelect {
			continue
		}
		err := c.acct.SetMetadata(ctx, b.Name, []store.MetadataEntry{{Name: urlauthKeyEntry}})
		if err != nil && !isNoMailbox(err) && !errors.Is(err, store.ErrNoSelect) {
			return fmt.Errorf("resetkey: remove key of %q: %w", b.Name, err)
		}
	}
	return nil
}

// urlFetchParams are what an extended URLFETCH (RFC 5524) asks for.
type urlFetchParams struct {
	body, binary, structure bool
}

func parseURLFetchParams(params []string) (urlFetchParams, error) {
	var p urlFetchParams
	for _, name := range params {
		switch name {
		case "BODY":
			p.body = true
		case "BINARY":
			p.binary = true
		case "BODYPARTSTRUCTURE":
			p.structure = true
		default:
			return p, bad("", "Unknown URLFETCH parameter "+name)
		}
	}
	if p.body && p.binary {
		return p, bad("", "BODY and BINARY exclude each other")
	}
	return p, nil
}

// cmdURLFetch answers each URL with its data, or NIL when the URL does not
// resolve for this session for any reason (RFC 4467 §7 URLFETCH, RFC
// 5524 for the parenthesised form). It never changes the selected
// mailbox or any flag.
func cmdURLFetch(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.URLFetchArgs)
	params := make([]urlFetchParams, len(args.URLs))
	for i, u := range args.URLs {
		p, err := parseURLFetchParams(u.Params)
		if err != nil {
			return err
		}
		params[i] = p
	}
	for i, u := range args.URLs {
		if err := c.urlFetchOne(ctx, u, params[i]); err != nil {
			return err
		}
	}
	return nil
}

// urlPart is an opened message named by a URL.
type urlPart struct {
	u    authURL
	body store.Body
	root *message.Part
}

func (p *urlPart) Close() { p.body.Close() }

// openAuthURL validates a full URLAUTH URL for this session and opens the
// message it names. It returns nil (and no error) when the URL does not
// resolve: bad syntax, wrong mechanism, access or expiry, unknown user,
// mailbox, key, UIDVALIDITY or message, or a token that does not match.
func (c *conn) openAuthURL(ctx context.Context, raw string) (*urlPart, error) {
	u, ok := parseAuthURL(raw, true)
	if !ok || u.mech != urlauthMechanism || !c.accessAllowed(&u) {
		return nil, nil
	}
	if !u.expire.IsZero() && time.Now().After(u.expire) {
		return nil, nil
	}
	acct, info, key, err := c.urlOwnerMailbox(ctx, &u)
	if err != nil {
		return nil, err
	}
	if key == nil {
		tokenMatches(urlauthDummyKey, &u) // as long as a real check
		return nil, nil
	}
	if !tokenMatches(key, &u) || (u.uidValidity != 0 && u.uidValidity != info.UIDValidity) {
		return nil, nil
	}
	body, err := acct.OpenBody(ctx, info.ID, u.uid)
	if errors.Is(err, store.ErrNoSuchMessage) || isNoMailbox(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("urlauth: open uid %d in %q of %q: %w", u.uid, u.mailbox, u.owner, err)
	}
	root, err := message.DecodeParts(body.Parts())
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("urlauth: decode parts of uid %d: %w", u.uid, err)
	}
	return &urlPart{u: u, body: body, root: root}, nil
}

// urlOwnerMailbox finds the URL's mailbox among its owner's own mailboxes
// and its key. A missing user, mailbox or key is a nil key and no error.
func (c *conn) urlOwnerMailbox(ctx context.Context, u *authURL) (store.Account, store.MailboxInfo, []byte, error) {
	var none store.MailboxInfo
	if _, _, shared := splitShared(u.mailbox); shared {
		return nil, none, nil, nil
	}
	acct := c.acct
	if u.owner != c.user {
		a, err := c.otherAccount(ctx, u.owner)
		if isNoMailbox(err) {
			return nil, none, nil, nil
		}
		if err != nil {
			return nil, none, nil, err
		}
		acct = a
	}
	info, err := acct.Mailbox(ctx, u.mailbox)
	if isNoMailbox(err) || (err == nil && info.NoSelect) {
		return nil, none, nil, nil
	}
	if err != nil {
		return nil, none, nil, fmt.Errorf("urlauth: mailbox %q of %q: %w", u.mailbox, u.owner, err)
	}
	key, err := mailboxKey(ctx, acct, info.Name)
	if isNoMailbox(err) {
		return nil, none, nil, nil
	}
	return acct, info, key, err
}

// urlFetchOne writes the URLFETCH response for one URL. What can fail is
// read before the response starts; once it has, only a broken read of the
// body (which ends the connection) stops it.
func (c *conn) urlFetchOne(ctx context.Context, req imap.URLFetchURL, p urlFetchParams) error {
	part, err := c.openAuthURL(ctx, req.URL)
	if err != nil {
		return err
	}
	if part != nil {
		defer part.Close()
	}
	var ext urlFetchExt
	if part != nil && req.Extended {
		if ext, err = prepareURLFetchExt(part, p); err != nil {
			return err
		}
		if p.structure && ext.structure == nil {
			part = nil // no part to describe: the URL names none
		}
	}
	c.w.WriteString("* URLFETCH ")
	c.w.AString(req.URL)
	c.w.SP()
	switch {
	case part == nil:
		c.w.WriteString("NIL")
	case !req.Extended:
		if err := c.writeURLSection(part); err != nil {
			return err
		}
	default:
		if err := c.writeURLFetchExt(part, p, &ext); err != nil {
			return err
		}
	}
	c.w.CRLF()
	return nil
}

// urlFetchExt is what an extended URLFETCH answer needs read beforehand.
type urlFetchExt struct {
	structure []byte // BODYPARTSTRUCTURE; nil when not asked or no part
	binary    []byte // the decoded part, for BINARY of a whole part
	undecoded bool   // BINARY asked and the part's encoding is unknown
}

// prepareURLFetchExt reads the BODYPARTSTRUCTURE and BINARY data asked for.
func prepareURLFetchExt(part *urlPart, p urlFetchParams) (urlFetchExt, error) {
	var ext urlFetchExt
	sec := part.u.section
	if p.structure && sec.Specifier == "" {
		s, err := message.PartStructure(part.body, part.root, sec.Part)
		if err != nil {
			return ext, fmt.Errorf("urlfetch: structure of uid %d: %w", part.u.uid, err)
		}
		ext.structure = s
	}
	if p.binary && sec.Specifier == "" {
		data, err := message.Binary(part.body, part.root, sec.Part)
		switch {
		case errors.Is(err, message.ErrUnknownEncoding):
			ext.undecoded = true
		case err != nil:
			return ext, fmt.Errorf("urlfetch: binary of uid %d: %w", part.u.uid, err)
		default:
			off, count := partialRange(&part.u, int64(len(data)))
			ext.binary = data[off : off+count]
		}
	}
	return ext, nil
}

// writeURLFetchExt writes RFC 5524's "(" [BODYPARTSTRUCTURE body]
// [BINARY data / BODY data] ")". BINARY of a HEADER, TEXT or MIME
// section is that section as stored: only a whole part has a transfer
// encoding to undo.
func (c *conn) writeURLFetchExt(part *urlPart, p urlFetchParams, ext *urlFetchExt) error {
	c.w.WriteByte('(')
	sep := ""
	if ext.structure != nil {
		c.w.WriteString("BODYPARTSTRUCTURE ")
		c.w.Write(ext.structure)
		sep = " "
	}
	switch {
	case p.binary && ext.undecoded:
		c.w.WriteString(sep + "BINARY NIL")
	case p.binary && part.u.section.Specifier == "":
		c.w.WriteString(sep + "BINARY ")
		if err := c.writeURLLiteral(bytes.NewReader(ext.binary), int64(len(ext.binary)), bytes.IndexByte(ext.binary, 0) >= 0); err != nil {
			return err
		}
	case p.binary:
		c.w.WriteString(sep + "BINARY ")
		if err := c.writeURLSection(part); err != nil {
			return err
		}
	case p.body:
		c.w.WriteString(sep + "BODY ")
		if err := c.writeURLSection(part); err != nil {
			return err
		}
	}
	c.w.WriteByte(')')
	return nil
}

// writeURLSection writes the URL's section, cut to its ;PARTIAL range,
// as a literal (a literal8 if it contains NUL).
func (c *conn) writeURLSection(part *urlPart) error {
	r, n, nul, err := urlSection(part)
	if err != nil {
		return fmt.Errorf("urlfetch: %w: %w", errClose, err)
	}
	return c.writeURLLiteral(r, n, nul)
}

// partialRange is the URL's ;PARTIAL range within n bytes: its offset and
// length (all of it without ;PARTIAL).
func partialRange(u *authURL, n int64) (off, count int64) {
	if !u.hasPartial {
		return 0, n
	}
	off = int64(min(u.offset, uint64(n)))
	count = n - off
	if u.hasLength {
		count = int64(min(u.length, uint64(count)))
	}
	return off, count
}

// urlSection returns the URL's section as stored, cut to its partial
// range, and whether it contains NUL.
func urlSection(part *urlPart) (io.Reader, int64, bool, error) {
	sec := part.u.section
	r, n, err := message.Section(part.body, part.root, sec.Part, sec.Specifier, sec.Fields)
	if err != nil {
		return nil, 0, false, fmt.Errorf("urlfetch: section of uid %d: %w", part.u.uid, err)
	}
	nul, _ := message.SectionNUL(part.root, sec.Part, sec.Specifier)
	off, count := partialRange(&part.u, n)
	if off > 0 {
		if _, err := io.CopyN(io.Discard, r, off); err != nil {
			return nil, 0, false, fmt.Errorf("urlfetch: read uid %d: %w", part.u.uid, err)
		}
	}
	return r, count, nul, nil
}

// writeURLLiteral writes n bytes of r as a literal. A read failure in the
// middle leaves the response cut, so it ends the connection.
func (c *conn) writeURLLiteral(r io.Reader, n int64, binary bool) error {
	if err := c.w.Literal(r, n, binary); err != nil {
		return fmt.Errorf("urlfetch: %w: %w", errClose, err)
	}
	return nil
}
