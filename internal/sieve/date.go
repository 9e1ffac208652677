package sieve

import (
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// date and currentdate (RFC 5260).

var dateParts = map[string]func(t time.Time) string{
	"year":  func(t time.Time) string { return fmt.Sprintf("%04d", t.Year()) },
	"month": func(t time.Time) string { return fmt.Sprintf("%02d", int(t.Month())) },
	"day":   func(t time.Time) string { return fmt.Sprintf("%02d", t.Day()) },
	"date":  func(t time.Time) string { return t.Format("2006-01-02") },
	"julian": func(t time.Time) string {
		// Modified Julian Day: days since 1858-11-17 in t's own calendar date.
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		epoch := time.Date(1858, 11, 17, 0, 0, 0, 0, time.UTC)
		return strconv.FormatInt(int64(d.Sub(epoch)/(24*time.Hour)), 10)
	},
	"hour":    func(t time.Time) string { return fmt.Sprintf("%02d", t.Hour()) },
	"minute":  func(t time.Time) string { return fmt.Sprintf("%02d", t.Minute()) },
	"second":  func(t time.Time) string { return fmt.Sprintf("%02d", t.Second()) },
	"time":    func(t time.Time) string { return t.Format("15:04:05") },
	"iso8601": func(t time.Time) string { return t.Format("2006-01-02T15:04:05-07:00") },
	"std11":   func(t time.Time) string { return t.Format("Mon, 02 Jan 2006 15:04:05 -0700") },
	"zone":    func(t time.Time) string { return t.Format("-0700") },
	"weekday": func(t time.Time) string { return strconv.Itoa(int(t.Weekday())) },
}

func validDatePart(p string) bool {
	_, ok := dateParts[p]
	return ok
}

// parseZone parses "+hhmm" / "-hhmm".
func parseZone(z string) (*time.Location, bool) {
	if len(z) != 5 || (z[0] != '+' && z[0] != '-') {
		return nil, false
	}
	h, err1 := strconv.Atoi(z[1:3])
	m, err2 := strconv.Atoi(z[3:5])
	if err1 != nil || err2 != nil || h > 23 || m > 59 {
		return nil, false
	}
	off := (h*60 + m) * 60
	if z[0] == '-' {
		off = -off
	}
	return time.FixedZone(z, off), true
}

func (r *runner) dateTest(n *node) (bool, error) {
	part := strings.ToLower(r.arg(n, len(n.args)-2))
	format, ok := dateParts[part]
	if !ok {
		return false, r.fail("%s: unknown date part %q", n.name, part)
	}
	var loc *time.Location
	if z, ok := r.tagStr(n, "zone"); ok {
		if loc, ok = parseZone(z); !ok {
			return false, r.fail("%s: bad :zone %q", n.name, z)
		}
	}
	var times []time.Time
	if n.name == "currentdate" {
		times = []time.Time{r.now}
	} else {
		vals := pickIndex(r.hdr.values(r.arg(n, 0)), n.m.index, n.m.last)
		for _, v := range vals {
			if t, ok := headerDate(unfoldValue(v)); ok {
				times = append(times, t)
			}
		}
	}
	var values []string
	for _, t := range times {
		switch {
		case loc != nil:
			t = t.In(loc)
		case n.has("originalzone"):
		default:
			t = t.In(time.Local)
		}
		values = append(values, format(t))
	}
	return r.match(n, values, r.strs(n.args[len(n.args)-1]))
}

// stripDateComment removes a trailing "(comment)" such as "(UTC)".
func stripDateComment(v string) string {
	if i := strings.IndexByte(v, '('); i > 0 {
		return strings.TrimSpace(v[:i])
	}
	return v
}

// headerDate parses a date-time field value; in a Received field (and
// anything else with a ";") the date follows the last ";" (RFC 5260 §4).
func headerDate(v string) (time.Time, bool) {
	if i := strings.LastIndexByte(v, ';'); i >= 0 {
		v = v[i+1:]
	}
	t, err := mail.ParseDate(stripDateComment(strings.TrimSpace(v)))
	return t, err == nil
}
