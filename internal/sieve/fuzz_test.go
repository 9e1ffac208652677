package sieve

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCompile feeds arbitrary scripts to Compile and runs those that
// compile on a small message: neither may panic, and execution stays
// within its limits.
func FuzzCompile(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.sieve")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`require ["fileinto","variables"]; if header :matches "subject" "*x*" { fileinto "${1}"; }`))
	f.Add([]byte("text:\n..\n.\n"))
	msg := NewMessage([]byte(crlf(plainMsg)))
	m := &scriptMap{personal: map[string]string{"a": `require "include"; include "a";`, "b": "keep;"}}
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := Compile(src, Options{MaxScriptBytes: 64 << 10, Include: m})
		if err != nil {
			if _, ok := err.(*CompileError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		res, err := s.Execute(context.Background(), testEnvelope(), msg, Limits{MaxSteps: 5000})
		if res == nil {
			t.Fatalf("nil result (err %v)", err)
		}
		if err != nil && !res.ImplicitKeep {
			t.Fatalf("runtime error %v without implicit keep", err)
		}
		if res.Steps > 5000+1 {
			t.Fatalf("%d steps", res.Steps)
		}
	})
}
