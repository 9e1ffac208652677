package message

import "testing"

// MultipartFrame and EmbeddedHeader on well-formed and broken input.
func TestMultipartFrame(t *testing.T) {
	for _, tc := range []struct {
		name, raw          string
		prologue, epilogue string
	}{
		{"crlf", "Content-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\n\r\none\r\n--b--\r\npost\r\n", "pre", "post\r\n"},
		{"lf", "Content-Type: multipart/mixed; boundary=b\n\npre\n--b\n\none\n--b--\npost", "pre", "post"},
		{"none", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b--\r\n", "", ""},
		{"padding after the close-delimiter", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b--  \r\nafter\r\n", "", "after\r\n"},
		{"no close-delimiter", "Content-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\n\r\none\r\n", "pre", ""},
		{"no delimiter at all", "Content-Type: multipart/mixed; boundary=b\r\n\r\njust text\r\n", "", ""},
	} {
		info, _ := Parse([]byte(tc.raw))
		root, err := DecodeParts(info.Parts)
		if err != nil {
			t.Fatal(err)
		}
		pro, epi := MultipartFrame([]byte(tc.raw), root)
		if pro != tc.prologue || epi != tc.epilogue {
			t.Errorf("%s: prologue %q epilogue %q, want %q %q", tc.name, pro, epi, tc.prologue, tc.epilogue)
		}
	}
	raw := "Content-Type: message/rfc822\r\n\r\nFrom: x@example.net\r\nSubject: s\r\n\r\nbody\r\n"
	info, _ := Parse([]byte(raw))
	root, _ := DecodeParts(info.Parts)
	if h := EmbeddedHeader([]byte(raw), root); h != "From: x@example.net\r\nSubject: s\r\n" {
		t.Errorf("embedded header %q", h)
	}
	if h := EmbeddedHeader([]byte(raw), root.Children[0]); h != "" {
		t.Errorf("header of a part that is not message/rfc822: %q", h)
	}
}
