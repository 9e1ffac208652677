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
// GENURLAUTH signs an IMAP URL (RFC 5092) naming a message or part in a
// mailbox the user can read; URLFETCH (and APPEND CATENATE, catenate.go)
// resolve signed URLs for whichever session the URL's access identifier
// admits. The INTERNAL mechanism's token is "01" (the algorithm's
// version) followed by the hex HMAC-SHA256 of the rump URL (everything
// before ":internal:") under the URL's user's access key for that
// mailbox: 32 random bytes, kept as a server-private METADATA entry
// (urlauthKeyEntry on the user's own mailbox, a server entry below it for
// a mailbox shared by another user: urlMailbox), which GETMETADATA,
// LIST-METADATA and SETMETADATA never show or touch (metadata.go).
// RESETKEY replaces it. URLFETCH runs with the rights of the URL's user
// (RFC 4467 §7): a shared mailbox on which that user has lost the read
// right no longer resolves. A URL whose key, mailbox, rights, message,
// access identifier or expiry does not check out fetches as NIL; which of
// these failed is never told.

const urlauthCapabilities = " URLAUTH URLAUTH=BINARY"

// urlmechSelect tells SELECT and EXAMINE clients the mechanisms (RFC 4467
// §8 URLMECH).
const urlmechSelect = "* OK [URLMECH INTERNAL] Ok\r\n"

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

// keyResets tells a user's sessions that RESETKEY replaced their key of
// the selected mailbox: RFC 4467 §7 says "Any current IMAP session logged
// in as the user that has the mailbox selected will receive an untagged
// OK response with the URLMECH status response code". Each RESETKEY
// takes the next number of a process-wide sequence and records it for
// the (user, owner, mailbox) it reset, or for the user alone when it
// reset them all; a selected session remembers the sequence number it
// has told (selected.keySeq) and, at its next sync, says
// "* OK [URLMECH INTERNAL]" once if a later reset concerns it. One entry
// per user and reset mailbox, a few words each. Only sessions of this
// process hear of it.
type keyResets struct {
	mu   sync.Mutex
	seq  uint64
	last map[keyResetOf]uint64
}

// keyResetOf names what a RESETKEY reset: one mailbox (owner, id) of the
// user's keys, or all of them (owner "" and id 0).
type keyResetOf struct {
	user, owner string
	id          int64
}

// now returns the sequence number of the latest reset.
func (k *keyResets) now() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.seq
}

// record notes a reset of what and returns its sequence number.
func (k *keyResets) record(what keyResetOf) uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.last == nil {
		k.last = make(map[keyResetOf]uint64)
	}
	k.seq++
	k.last[what] = k.seq
	return k.seq
}

// since returns the latest reset after seq that concerns user's key of
// owner's mailbox id, 0 if none.
func (k *keyResets) since(user, owner string, id int64, seq uint64) uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	latest := max(k.last[keyResetOf{user, owner, id}], k.last[keyResetOf{user: user}])
	if latest > seq {
		return latest
	}
	return 0
}

// tellKeyReset writes the URLMECH response RFC 4467 §7 asks for when
// another session reset the key of the selected mailbox.
func (c *conn) tellKeyReset() {
	sel := c.sel
	if r := c.srv.keyResets.since(c.user, sel.owner, sel.info.ID, sel.keySeq); r != 0 {
		sel.keySeq = r
		c.w.WriteString("* OK [" + urlmechCode + "] Access key reset\r\n")
	}
}

// noteKeyReset records a RESETKEY of this session (owner "" for all the
// user's keys) and wakes the user's sessions on the mailbox; this
// session, told by the tagged OK, is not told again.
func (c *conn) noteKeyReset(owner string, id int64) {
	seq := c.srv.keyResets.record(keyResetOf{c.user, owner, id})
	if c.sel != nil && (owner == "" || (c.sel.owner == owner && c.sel.info.ID == id)) {
		c.sel.keySeq = seq
	}
	if owner != "" {
		// Sessions learn of it at their next sync; this wakes those in
		// IDLE (and, harmlessly, the mailbox's other watchers, which
		// find no change).
		c.srv.cfg.Notify.MailboxChanged(owner, id, 0)
	}
}

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
	user       string // the owner of the access key table (RFC 4467 §7)
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
	if len(raw) > imap.MaxURLLength || !isASCII(raw) || !hasIMAPScheme(raw) {
		return u, false
	}
	lower := strings.ToLower(raw) // ASCII only: indexes into raw stay valid
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
	u.user = user
	if u.imapURL, ok = parseURLPath(path, ""); !ok {
		return u, false
	}
	return u, true
}

// isASCII reports whether s is 7-bit: URLs %-encode everything else (RFC
// 5092 §2).
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
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

// urlMailbox is the mailbox a URL names, seen as the URL's user: the
// account holding it (its owner's), and where that user's access key for
// it lives. For the user's own mailbox that is the mailbox's own METADATA
// entry; for a mailbox another user shares, a server entry of the URL's
// user named after the mailbox (sharedKeyEntry), so two users of one
// mailbox have different keys (RFC 4467 §2.2).
type urlMailbox struct {
	acct       store.Account
	info       store.MailboxInfo
	keyAcct    store.Account
	keyMailbox string // "" for a server entry
	keyEntry   string
}

// accountOf is the session's account for its own user, else user's.
func (c *conn) accountOf(ctx context.Context, user string) (store.Account, error) {
	if user == c.user {
		return c.acct, nil
	}
	return c.otherAccount(ctx, user)
}

// resolveURLMailbox finds mailbox name as user sees it: one of user's own
// mailboxes, or "Other Users/<owner>/<name>" on which user (still) has
// the read right. A mailbox that is missing, not selectable or not
// readable by user is store.ErrNoSuchMailbox.
func (c *conn) resolveURLMailbox(ctx context.Context, user, name string) (*urlMailbox, error) {
	userAcct, err := c.accountOf(ctx, user)
	if err != nil {
		return nil, err
	}
	m := &urlMailbox{acct: userAcct, keyAcct: userAcct, keyEntry: urlauthKeyEntry}
	owner, local, shared := splitShared(name)
	if shared {
		if owner == "" || local == "" || owner == user {
			return nil, errNoMailbox
		}
		if first, _, _ := strings.Cut(local, store.Separator); strings.EqualFold(first, "INBOX") {
			local = "INBOX" + local[len(first):]
		}
		if m.acct, err = c.accountOf(ctx, owner); err != nil {
			return nil, err
		}
		acl, err := m.acct.ACL(ctx, local)
		if err != nil {
			return nil, fmt.Errorf("urlauth: rights on %q: %w", name, err)
		}
		if !strings.Contains(store.RightsOf(acl, user), "r") {
			return nil, errNoMailbox
		}
		name = local
	}
	if m.info, err = m.acct.Mailbox(ctx, name); err != nil {
		return nil, err
	}
	if m.info.NoSelect {
		return nil, errNoMailbox
	}
	if shared {
		m.keyEntry = sharedKeyEntry(owner, &m.info)
	} else {
		m.keyMailbox = m.info.Name
	}
	return m, nil
}

// sharedKeyEntry names the server METADATA entry holding a user's key for
// owner's mailbox: a hash of the owner and the mailbox's MAILBOXID (which
// includes its UIDVALIDITY), so a mailbox deleted and created again under
// the same name does not inherit the key.
func sharedKeyEntry(owner string, info *store.MailboxInfo) string {
	h := sha256.Sum256([]byte(owner + "\x00" + info.ObjectID()))
	return urlauthKeyEntry + "/" + hex.EncodeToString(h[:16])
}

// key reads the access key; nil if there is none.
func (m *urlMailbox) key(ctx context.Context) ([]byte, error) {
	got, err := m.keyAcct.GetMetadata(ctx, m.keyMailbox, []string{m.keyEntry}, store.MetadataDepth0)
	if err != nil {
		return nil, fmt.Errorf("urlauth: read key of %q: %w", m.info.Name, err)
	}
	for _, e := range got {
		if e.Name == m.keyEntry && len(e.Value) == urlauthKeySize {
			return e.Value, nil
		}
	}
	return nil, nil
}

// newKey stores a fresh access key and returns it. Callers hold
// urlauthKeyMu.
func (m *urlMailbox) newKey(ctx context.Context) ([]byte, error) {
	key := make([]byte, urlauthKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("urlauth: random key: %w", err)
	}
	if err := m.keyAcct.SetMetadata(ctx, m.keyMailbox, []store.MetadataEntry{{Name: m.keyEntry, Value: key}}); err != nil {
		return nil, fmt.Errorf("urlauth: store key of %q: %w", m.info.Name, err)
	}
	return key, nil
}

// keyOrNew returns the access key, creating one if there is none (RFC
// 4467 §7: GENURLAUTH needs no RESETKEY first).
func (m *urlMailbox) keyOrNew(ctx context.Context) ([]byte, error) {
	if key, err := m.key(ctx); err != nil || key != nil {
		return key, err
	}
	urlauthKeyMu.Lock()
	defer urlauthKeyMu.Unlock()
	if key, err := m.key(ctx); err != nil || key != nil {
		return key, err
	}
	return m.newKey(ctx)
}

// cmdGenURLAuth signs each URL (RFC 4467 §7 GENURLAUTH). Every URL is
// checked before any key is made: a bad one fails the command with BAD.
func cmdGenURLAuth(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.GenURLAuthArgs)
	urls := make([]authURL, len(args.Pairs))
	boxes := make([]*urlMailbox, len(args.Pairs))
	for i, p := range args.Pairs {
		if p.Mechanism != urlauthMechanism {
			return bad("", "Unsupported URLAUTH mechanism")
		}
		u, ok := parseAuthURL(p.URL, false)
		switch {
		case !ok:
			return bad("", "Invalid URL: an absolute IMAP URL with user, UID and ;URLAUTH=access is needed")
		case u.user != c.user:
			return bad("", "The URL's user must be the logged-in user")
		}
		m, err := c.resolveURLMailbox(ctx, c.user, u.mailbox)
		if isNoMailbox(err) || (err == nil && u.uidValidity != 0 && u.uidValidity != m.info.UIDValidity) {
			return bad("", "The URL's mailbox does not exist")
		}
		if err != nil {
			return fmt.Errorf("genurlauth: mailbox %q: %w", u.mailbox, err)
		}
		urls[i], boxes[i] = u, m
	}
	c.w.WriteString("* GENURLAUTH")
	for i, u := range urls {
		key, err := boxes[i].keyOrNew(ctx)
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
		c.noteKeyReset("", 0)
		return c.okCode(ctx, "", "All keys removed")
	}
	name, err := c.mailboxName(args.Mailbox)
	if err != nil {
		return err
	}
	m, err := c.resolveURLMailbox(ctx, c.user, name)
	if err != nil {
		return storeErr(err, name)
	}
	urlauthKeyMu.Lock()
	_, err = m.newKey(ctx)
	urlauthKeyMu.Unlock()
	if err != nil {
		return metadataErr(err, name)
	}
	c.noteKeyReset(m.acct.User(), m.info.ID)
	return c.okCode(ctx, urlmechCode, "Key replaced")
}

// removeAllKeys removes every access key of the user: those of its own
// mailboxes and those for mailboxes others share.
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
	shared, err := c.acct.GetMetadata(ctx, "", []string{urlauthKeyEntry}, store.MetadataDepth1)
	if err != nil {
		return fmt.Errorf("resetkey: list keys of shared mailboxes: %w", err)
	}
	gone := make([]store.MetadataEntry, 0, len(shared))
	for _, e := range shared {
		gone = append(gone, store.MetadataEntry{Name: e.Name})
	}
	if len(gone) > 0 {
		if err := c.acct.SetMetadata(ctx, "", gone); err != nil {
			return fmt.Errorf("resetkey: remove keys of shared mailboxes: %w", err)
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
		c.trimOthers() // URLs of many users: keep few accounts open
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
	m, err := c.resolveURLMailbox(ctx, u.user, u.mailbox)
	if isNoMailbox(err) {
		tokenMatches(urlauthDummyKey, &u) // as long as a real check
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	key, err := m.key(ctx)
	if err != nil {
		return nil, err
	}
	if key == nil {
		tokenMatches(urlauthDummyKey, &u)
		return nil, nil
	}
	if !tokenMatches(key, &u) || (u.uidValidity != 0 && u.uidValidity != m.info.UIDValidity) {
		return nil, nil
	}
	body, err := m.acct.OpenBody(ctx, m.info.ID, u.uid)
	if errors.Is(err, store.ErrNoSuchMessage) || isNoMailbox(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("urlauth: open uid %d in %q of %q: %w", u.uid, u.mailbox, u.user, err)
	}
	root, err := message.DecodeParts(body.Parts())
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("urlauth: decode parts of uid %d: %w", u.uid, err)
	}
	return &urlPart{u: u, body: body, root: root}, nil
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
