package message

import "io"

// PartStructure returns the IMAP BODYSTRUCTURE (with extension data) of
// the part at path, as FETCH BODYSTRUCTURE would show that part inside
// the whole message (RFC 5524 BODYPARTSTRUCTURE). The empty path is the
// whole message. It returns nil when there is no such part. Only the
// part's own bytes are read and parsed.
func PartStructure(r io.ReaderAt, root *Part, path []int) ([]byte, error) {
	p := Find(root, path)
	if p == nil {
		return nil, nil
	}
	digest := false
	if len(path) > 0 {
		parent := Find(root, path[:len(path)-1])
		if parent != nil && parent.Message && len(parent.Children) == 1 {
			parent = parent.Children[0]
		}
		digest = parent != nil && parent.Type == "multipart" && parent.Subtype == "digest"
	}
	raw, err := readRange(r, p.HeaderStart, p.BodyEnd)
	if err != nil {
		return nil, err
	}
	ps := &parser{raw: raw}
	n := ps.entity(0, len(raw), 0, digest)
	return appendBody(nil, raw, n, true), nil
}
