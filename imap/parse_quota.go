package imap

// QuotaArgs is GETQUOTA quota-root (RFC 9208 §4.2.1).
type QuotaArgs struct {
	Root string
}

// QuotaRootArgs is GETQUOTAROOT mailbox (RFC 9208 §4.2.2). Mailbox is the
// raw astring as sent.
type QuotaRootArgs struct {
	Mailbox string
}

// quotaArgs parses the arguments of GETQUOTA and GETQUOTAROOT.
func (r *Reader) quotaArgs(name string) any {
	r.sp()
	arg := r.astring()
	if name == "GETQUOTA" {
		return &QuotaArgs{Root: arg}
	}
	return &QuotaRootArgs{Mailbox: arg}
}
