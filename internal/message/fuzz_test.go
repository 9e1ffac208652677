package message

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		info, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		root, err := DecodeParts(info.Parts)
		if err != nil {
			t.Fatal(err)
		}
		checkTree(t, root, int64(len(raw)))
		ra := bytes.NewReader(raw)
		var walk func(path []int, p *Part, depth int)
		count := 0
		walk = func(path []int, p *Part, depth int) {
			if count++; count > 200 {
				return
			}
			for _, spec := range []string{"", "MIME", "HEADER", "TEXT", "HEADER.FIELDS", "HEADER.FIELDS.NOT"} {
				if spec == "MIME" && len(path) == 0 {
					continue
				}
				r, n, err := Section(ra, root, path, spec, []string{"subject", "content-type"})
				if err != nil {
					t.Fatalf("%v %s: %v", path, spec, err)
				}
				got, err := io.ReadAll(r)
				if err != nil || int64(len(got)) != n {
					t.Fatalf("%v %s: read %d of %d: %v", path, spec, len(got), n, err)
				}
			}
			Binary(ra, root, path)
			TextParts(ra, root, func(string) bool { return true })
			MultipartFrame(raw, p) // Sieve's body :content: must not panic
			EmbeddedHeader(raw, p)
			kids := p.Children
			if p.Message {
				kids = nil
				if k := p.Children[0]; k.Type == "multipart" {
					kids = k.Children
				} else {
					kids = []*Part{k}
				}
			} else if p.Type != "multipart" {
				return
			}
			for i, c := range kids {
				walk(append(path[:len(path):len(path)], i+1), c, depth+1)
			}
		}
		walk(nil, root, 0)
	})
}
