package imap

import (
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Modified UTF-7 for mailbox names (RFC 3501 §5.1.3).

const mutf7Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"

var mutf7Decode = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(mutf7Alphabet); i++ {
		t[mutf7Alphabet[i]] = int8(i)
	}
	return t
}()

// ErrMUTF7 is wrapped by every DecodeMUTF7 error.
var ErrMUTF7 = errors.New("invalid modified UTF-7")

func mutf7Err(msg string) error { return &mutf7Error{msg} }

type mutf7Error struct{ msg string }

func (e *mutf7Error) Error() string { return ErrMUTF7.Error() + ": " + e.msg }
func (e *mutf7Error) Unwrap() error { return ErrMUTF7 }

// EncodeMUTF7 encodes a UTF-8 string as modified UTF-7. Printable ASCII
// other than "&" passes through; "&" becomes "&-"; everything else is
// encoded as modified base64 of UTF-16BE. Invalid UTF-8 bytes are encoded
// as U+FFFD.
func EncodeMUTF7(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '&' {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c <= 0x7e {
			if c == '&' {
				b.WriteString("&-")
			} else {
				b.WriteByte(c)
			}
			i++
			continue
		}
		// Collect the run of characters that need encoding.
		var units []uint16
		for i < len(s) {
			if c := s[i]; c >= 0x20 && c <= 0x7e {
				break
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			i += size
			if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
				units = append(units, uint16(r1), uint16(r2))
			} else {
				units = append(units, uint16(r))
			}
		}
		b.WriteByte('&')
		var bits uint32
		nbits := 0
		for _, u := range units {
			bits = bits<<16 | uint32(u)
			nbits += 16
			for nbits >= 6 {
				nbits -= 6
				b.WriteByte(mutf7Alphabet[(bits>>nbits)&0x3f])
			}
		}
		if nbits > 0 {
			b.WriteByte(mutf7Alphabet[(bits<<(6-nbits))&0x3f])
		}
		b.WriteByte('-')
	}
	return b.String()
}

// DecodeMUTF7 decodes a modified UTF-7 mailbox name into UTF-8. It is
// strict: it rejects bytes outside printable ASCII, bad base64, non-zero
// padding bits, unterminated shifts, encoded printable ASCII, adjacent
// encoded runs and unpaired surrogates.
func DecodeMUTF7(s string) (string, error) {
	plain := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", mutf7Err("byte outside printable ASCII")
		}
		if c == '&' {
			plain = false
		}
	}
	if plain {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	prevEncoded := false // the previous token was a non-empty shift
	for i := 0; i < len(s); {
		c := s[i]
		if c != '&' {
			b.WriteByte(c)
			i++
			prevEncoded = false
			continue
		}
		i++
		start := i
		for i < len(s) && s[i] != '-' {
			i++
		}
		if i == len(s) {
			return "", mutf7Err("unterminated shift sequence")
		}
		enc := s[start:i]
		i++ // '-'
		if len(enc) == 0 {
			b.WriteByte('&')
			prevEncoded = false
			continue
		}
		if prevEncoded {
			return "", mutf7Err("adjacent encoded sequences")
		}
		prevEncoded = true
		if err := decodeMUTF7Run(&b, enc); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

func decodeMUTF7Run(b *strings.Builder, enc string) error {
	var bits uint32
	nbits := 0
	var high uint16 // pending high surrogate
	for j := 0; j < len(enc); j++ {
		v := mutf7Decode[enc[j]]
		if v < 0 {
			return mutf7Err("invalid base64 character")
		}
		bits = bits<<6 | uint32(v)
		nbits += 6
		if nbits < 16 {
			continue
		}
		nbits -= 16
		u := uint16(bits >> nbits)
		bits &= 1<<nbits - 1
		switch {
		case high != 0:
			if !utf16.IsSurrogate(rune(u)) || u < 0xdc00 {
				return mutf7Err("unpaired surrogate")
			}
			b.WriteRune(utf16.DecodeRune(rune(high), rune(u)))
			high = 0
		case u >= 0xd800 && u < 0xdc00:
			high = u
		case u >= 0xdc00 && u < 0xe000:
			return mutf7Err("unpaired surrogate")
		case u >= 0x20 && u <= 0x7e:
			return mutf7Err("printable ASCII must not be encoded")
		default:
			b.WriteRune(rune(u))
		}
	}
	if high != 0 {
		return mutf7Err("unpaired surrogate")
	}
	if nbits >= 6 {
		return mutf7Err("truncated UTF-16 unit")
	}
	if bits != 0 {
		return mutf7Err("non-zero padding bits")
	}
	return nil
}
