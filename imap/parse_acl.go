package imap

// ACLArgs is the arguments of the ACL commands (RFC 4314 §3): SETACL
// mailbox identifier mod-rights, DELETEACL and LISTRIGHTS mailbox
// identifier, GETACL and MYRIGHTS mailbox. Strings are the raw astrings
// as sent; Rights is SETACL's mod-rights with its "+"/"-" prefix.
type ACLArgs struct {
	Mailbox    string
	Identifier string
	Rights     string
}

// aclArgs parses the arguments of SETACL, DELETEACL, GETACL, LISTRIGHTS
// and MYRIGHTS.
func (r *Reader) aclArgs(name string) *ACLArgs {
	r.sp()
	a := &ACLArgs{Mailbox: r.astring()}
	switch name {
	case "SETACL":
		r.sp()
		a.Identifier = r.astring()
		r.sp()
		a.Rights = r.astring()
	case "DELETEACL", "LISTRIGHTS":
		r.sp()
		a.Identifier = r.astring()
	}
	return a
}

// SetQuotaArgs is SETQUOTA quota-root (resource limit ...) (RFC 9208
// §4.1.3). Resource names are upper-cased; an empty list removes every
// limit.
type SetQuotaArgs struct {
	Root      string
	Resources []QuotaLimit
}

// QuotaLimit is one resource and its limit in SETQUOTA.
type QuotaLimit struct {
	Resource string
	Limit    uint64
}

// maxQuotaResources bounds the resources one SETQUOTA may name.
const maxQuotaResources = 16

func (r *Reader) setQuotaArgs() *SetQuotaArgs {
	r.sp()
	a := &SetQuotaArgs{Root: r.astring()}
	r.sp()
	r.expect('(', "(")
	for r.peek() != ')' {
		if len(a.Resources) > 0 {
			r.sp()
		}
		if len(a.Resources) == maxQuotaResources {
			r.fail("too many quota resources")
		}
		res := string(r.word(cAtom, "quota resource name"))
		r.sp()
		a.Resources = append(a.Resources, QuotaLimit{Resource: res, Limit: r.number(maxUint63)})
	}
	r.next()
	return a
}
