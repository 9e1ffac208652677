package auth

import (
	"bytes"
	"errors"
)

// ErrBadPlain is returned for a malformed SASL PLAIN response.
var ErrBadPlain = errors.New("malformed SASL PLAIN response")

// ErrAuthzid is returned when a PLAIN response asks to act as another user.
var ErrAuthzid = errors.New("authorization identity differs from authentication identity")

// ParsePlain decodes a SASL PLAIN response (RFC 4616):
// [authzid] NUL authcid NUL passwd (already base64-decoded). The authzid
// must be empty or equal to authcid; tern has no proxy authorization.
func ParsePlain(resp []byte) (username, password string, err error) {
	f := bytes.Split(resp, []byte{0})
	if len(f) != 3 || len(f[1]) == 0 {
		return "", "", ErrBadPlain
	}
	if len(f[0]) != 0 && !bytes.Equal(f[0], f[1]) {
		return "", "", ErrAuthzid
	}
	return string(f[1]), string(f[2]), nil
}
