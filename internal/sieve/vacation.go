package sieve

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// vacation (RFC 5230, :seconds from RFC 6131). The interpreter decides
// whether a reply is due for this message (§4.5, §4.6) and builds it
// (§5); whether it was already sent to this sender within the period is
// for the sender to decide with Vacation.Key.

const (
	defaultVacationPeriod = 7 * 24 * time.Hour
	minVacationPeriod     = 24 * time.Hour // :days below 1 means 1
	maxVacationPeriod     = 365 * 24 * time.Hour
	maxVacationReason     = 64 << 10
)

func (r *runner) vacation(n *node) error {
	if r.has(ActionVacation) {
		return r.fail("vacation used twice")
	}
	v := &Vacation{Reason: r.arg(n, 0), MIME: n.has("mime")}
	if len(v.Reason) > maxVacationReason {
		return r.fail("vacation reason longer than %d bytes", maxVacationReason)
	}
	v.Period = defaultVacationPeriod
	if a, ok := n.tags["days"]; ok {
		v.Period = max(minVacationPeriod, time.Duration(min(a.num, 365))*24*time.Hour)
	}
	if a, ok := n.tags["seconds"]; ok {
		v.Period = time.Duration(min(a.num, uint64(maxVacationPeriod/time.Second))) * time.Second
	}
	subject, hasSubject := r.tagStr(n, "subject")
	from, _ := r.tagStr(n, "from")
	var addresses []string
	if a, ok := n.tags["addresses"]; ok {
		addresses = r.strs(a)
	}
	v.Handle, _ = r.tagStr(n, "handle")
	if v.Handle == "" {
		// RFC 5230 §4.2: without :handle, the arguments identify the reply.
		sum := sha256.Sum256([]byte(strings.Join([]string{v.Reason, subject, from, strings.Join(addresses, ","), fmt.Sprint(v.MIME)}, "\x00")))
		v.Handle = hex.EncodeToString(sum[:8])
	}
	if !r.vacationDue(addresses) {
		return nil
	}
	v.To = r.env.From
	v.From = r.env.To
	if from != "" {
		v.From = from
	} else if r.env.OrigTo != "" {
		v.From = r.env.OrigTo
	}
	if hasSubject {
		v.Subject = subject
	} else {
		orig := ""
		if vals := r.hdr.values("subject"); len(vals) > 0 {
			orig = decodedValue(vals[0])
		}
		v.Subject = "Auto: " + orig
	}
	v.Key = strings.ToLower(v.To) + "\x00" + v.Handle
	v.Message = r.vacationMessage(v)
	return r.addAction(Action{Kind: ActionVacation, Vacation: v})
}

// vacationDue applies RFC 5230 §4.5 and §4.6: no reply to the null
// sender, to the user's own or list and robot addresses, to automatic
// or bulk mail, nor when the user is not a visible recipient.
func (r *runner) vacationDue(extra []string) bool {
	sender := strings.ToLower(r.env.From)
	if sender == "" {
		return false
	}
	own := []string{r.env.To, r.env.OrigTo}
	own = append(own, r.env.UserAddresses...)
	own = append(own, extra...)
	for _, a := range own {
		if a != "" && strings.EqualFold(a, sender) {
			return false
		}
	}
	local, _, _ := strings.Cut(sender, "@")
	if strings.HasPrefix(local, "owner-") || strings.HasSuffix(local, "-request") || strings.HasSuffix(local, "-owner") ||
		local == "mailer-daemon" || local == "listserv" || local == "majordomo" || local == "postmaster" ||
		strings.HasPrefix(local, "noreply") || strings.HasPrefix(local, "no-reply") || strings.HasPrefix(local, "do-not-reply") {
		return false
	}
	for _, v := range r.hdr.values("auto-submitted") {
		if !strings.EqualFold(strings.TrimSpace(strings.SplitN(unfoldValue(v), ";", 2)[0]), "no") {
			return false
		}
	}
	for _, v := range r.hdr.values("precedence") {
		switch strings.ToLower(unfoldValue(v)) {
		case "bulk", "list", "junk":
			return false
		}
	}
	for _, f := range r.hdr.fields {
		l := strings.ToLower(f.name)
		if strings.HasPrefix(l, "list-") || l == "x-auto-response-suppress" {
			return false
		}
	}
	for _, h := range []string{"to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"} {
		for _, v := range r.hdr.values(h) {
			for _, a := range addressesOf(decodedValue(v)) {
				for _, o := range own {
					if o != "" && strings.EqualFold(a, o) {
						return true
					}
				}
			}
		}
	}
	return false
}

// vacationMessage builds the reply (RFC 5230 §5).
func (r *runner) vacationMessage(v *Vacation) []byte {
	var b bytes.Buffer
	hdr := func(name, value string) {
		b.WriteString(name + ": " + strings.NewReplacer("\r", " ", "\n", " ").Replace(value) + "\r\n")
	}
	hdr("Date", r.now.Format(time.RFC1123Z))
	hdr("From", (&mail.Address{Address: v.From}).String())
	hdr("To", (&mail.Address{Address: v.To}).String())
	hdr("Subject", mime.QEncoding.Encode("utf-8", v.Subject))
	var rnd [12]byte
	rand.Read(rnd[:])
	domain := "localhost"
	if _, d, ok := strings.Cut(v.From, "@"); ok && d != "" {
		domain = d
	}
	hdr("Message-ID", "<vacation."+hex.EncodeToString(rnd[:])+"@"+domain+">")
	if ids := r.hdr.values("message-id"); len(ids) > 0 {
		id := unfoldValue(ids[0])
		hdr("In-Reply-To", id)
		refs := ""
		if rv := r.hdr.values("references"); len(rv) > 0 {
			refs = unfoldValue(rv[0]) + " "
		}
		hdr("References", refs+id)
	}
	hdr("Auto-Submitted", "auto-replied (vacation)")
	hdr("MIME-Version", "1.0")
	if v.MIME {
		b.WriteString(toCRLF(v.Reason))
		return b.Bytes()
	}
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(toCRLF(v.Reason)))
	qp.Close()
	return b.Bytes()
}

func toCRLF(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}
