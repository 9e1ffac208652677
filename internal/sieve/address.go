package sieve

import (
	"net/mail"
	"strings"
)

// addressesOf extracts the addresses (local@domain) of a header value.
// Malformed values are read leniently: each comma-separated element
// yields what is in its angle brackets, or the element itself.
func addressesOf(raw string) []string {
	v := unfoldValue(raw)
	if list, err := mail.ParseAddressList(v); err == nil {
		out := make([]string, 0, len(list))
		for _, a := range list {
			out = append(out, a.Address)
		}
		return out
	}
	var out []string
	for _, elem := range splitOutsideQuotes(v) {
		// A group "name: a@b, c@d;" puts its name before the first member.
		if c := strings.IndexByte(elem, ':'); c >= 0 && !strings.Contains(elem[:c], "@") && !strings.Contains(elem[:c], "<") {
			elem = elem[c+1:]
		}
		elem = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(elem), ";"))
		if lt := strings.LastIndexByte(elem, '<'); lt >= 0 {
			if gt := strings.IndexByte(elem[lt:], '>'); gt >= 0 {
				elem = elem[lt+1 : lt+gt]
			}
		}
		if elem = strings.TrimSpace(elem); elem != "" {
			out = append(out, elem)
		}
	}
	return out
}

// splitOutsideQuotes splits at commas outside quoted strings and angle
// brackets.
func splitOutsideQuotes(v string) []string {
	var out []string
	inQuote, angle, start := false, 0, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case c == '<' && !inQuote:
			angle++
		case c == '>' && !inQuote && angle > 0:
			angle--
		case c == ',' && !inQuote && angle == 0:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// addressPart returns the part of addr the test asks for; ok=false when
// the address has no such part (":detail" of an address without one).
func addressPart(addr, part string) (string, bool) {
	local, domain := addr, ""
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		local, domain = addr[:at], addr[at+1:]
	}
	switch part {
	case "localpart":
		return local, true
	case "domain":
		return domain, true
	case "user":
		user, _, _ := strings.Cut(local, subaddressSeparator)
		return user, true
	case "detail":
		_, detail, ok := strings.Cut(local, subaddressSeparator)
		return detail, ok
	}
	return addr, true
}

// subaddressSeparator separates user and detail (RFC 5233).
const subaddressSeparator = "+"
