package sieve

import (
	"mime"
	"strings"
)

// editheader (RFC 5293): addheader and deleteheader change the header
// that later tests see and that later actions deliver.

// maxAddedValueBytes bounds one added field value.
const maxAddedValueBytes = 8 << 10

func (r *runner) headerEdit() error {
	edits := 0
	for _, a := range r.res.Actions {
		if a.Kind == ActionAddHeader || a.Kind == ActionDeleteHeader {
			edits++
		}
	}
	if edits >= r.lim.MaxHeaderEdits {
		return r.fail("more than %d header edits", r.lim.MaxHeaderEdits)
	}
	return nil
}

func (r *runner) addHeader(n *node) error {
	name, value := r.arg(n, 0), r.arg(n, 1)
	if !validFieldName(name) {
		return r.fail("addheader: invalid header field name %q", name)
	}
	if protectedField(name) {
		return nil // silently ignored (RFC 5293 §6)
	}
	if len(value) > maxAddedValueBytes {
		return r.fail("addheader: value longer than %d bytes", maxAddedValueBytes)
	}
	if err := r.headerEdit(); err != nil {
		return err
	}
	f := headerField{name: name, value: " " + encodeFieldValue(value)}
	r.hdr.edit()
	if n.has("last") {
		r.hdr.fields = append(r.hdr.fields, f)
	} else {
		r.hdr.fields = append([]headerField{f}, r.hdr.fields...)
	}
	return r.addAction(Action{Kind: ActionAddHeader, Field: name, Value: value})
}

// encodeFieldValue makes a value safe for a header field: line breaks
// become spaces and non-ASCII text is RFC 2047 encoded.
func encodeFieldValue(v string) string {
	v = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(v)
	for i := 0; i < len(v); i++ {
		if v[i] >= 0x80 || v[i] == 0 {
			return mime.QEncoding.Encode("utf-8", strings.ReplaceAll(v, "\x00", ""))
		}
	}
	return v
}

func (r *runner) deleteHeader(n *node) error {
	name := r.arg(n, 0)
	if !validFieldName(name) {
		return r.fail("deleteheader: invalid header field name %q", name)
	}
	if protectedField(name) {
		return nil
	}
	if err := r.headerEdit(); err != nil {
		return err
	}
	var mt *matcher
	if len(n.args) == 2 {
		var err error
		if mt, err = r.newMatcher(n.m, r.strs(n.args[1])); err != nil {
			return err
		}
	}
	// Positions of the fields with this name, to apply :index/:last.
	var idx []int
	for i, f := range r.hdr.fields {
		if strings.EqualFold(f.name, name) {
			idx = append(idx, i)
		}
	}
	if a, ok := n.tags["index"]; ok {
		k := int(a.num)
		if k > len(idx) {
			idx = nil
		} else if n.has("last") {
			idx = idx[len(idx)-k : len(idx)-k+1]
		} else {
			idx = idx[k-1 : k]
		}
	}
	drop := map[int]bool{}
	for _, i := range idx {
		if mt != nil {
			ok, err := mt.matchValues([]string{decodedValue(r.hdr.fields[i].value)})
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		drop[i] = true
	}
	if len(drop) > 0 {
		r.hdr.edit()
		kept := r.hdr.fields[:0]
		for i, f := range r.hdr.fields {
			if !drop[i] {
				kept = append(kept, f)
			}
		}
		r.hdr.fields = kept
	}
	return r.addAction(Action{Kind: ActionDeleteHeader, Field: name, Removed: len(drop)})
}
