package message

import (
	"net/mail"
	"testing"
)

// The fast path for the usual Date: form gives what net/mail.ParseDate
// gives, and costs one parse without garbage.
func TestParseDateUsualForm(t *testing.T) {
	for _, v := range []string{
		"Tue, 02 Jan 2024 08:48:28 +0000",
		"Tue, 2 Jan 2024 08:48:28 -0700",
		"Sun, 07 Feb 2106 06:48:18 +0130",
		"Mon, 29 Feb 2016 23:59:59 +1400",
	} {
		want, err := mail.ParseDate(v)
		if err != nil {
			t.Fatal(err)
		}
		got := parseDate(v)
		if !got.Equal(want) || got.Format(rfc5322Date) != want.Format(rfc5322Date) {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { parseDate("Tue, 02 Jan 2024 08:48:28 +0000") }); n > 0 {
		t.Errorf("%v allocations per usual Date:", n)
	}
	// Other forms still go the long way.
	for v, want := range map[string]string{
		"2 Jan 2024 08:48:28 +0000":            "Tue, 2 Jan 2024 08:48:28 +0000",
		"Tue, 2 Jan 2024 08:48:28 +0000 (UTC)": "Tue, 2 Jan 2024 08:48:28 +0000",
		"Tue, 2 Jan 2024 08:48 +0000":          "Tue, 2 Jan 2024 08:48:00 +0000",
		"not a date":                           "Mon, 1 Jan 0001 00:00:00 +0000",
	} {
		if got := parseDate(v).Format(rfc5322Date); got != want {
			t.Errorf("%q: %s, want %s", v, got, want)
		}
	}
}
