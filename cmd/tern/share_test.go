package main

import "testing"

func TestUserShareCommand(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	runT(t, "pw\n", "user", "add", "team", "--data", dir)
	runT(t, "pw\n", "user", "add", "bob", "--data", dir)
	r := runT(t, "", "user", "share", "team", "INBOX", "bob", "lrsd", "--data", dir)
	if r.code != 0 || r.stdout != "team INBOX: team lrswipkxtea, bob lrsxte\n" {
		t.Fatalf("share: %+v", r)
	}
	r = runT(t, "", "user", "share", "team", "INBOX", "anyone", "+lr", "--data", dir)
	if r.code != 0 || r.stdout != "team INBOX: team lrswipkxtea, anyone lr, bob lrsxte\n" {
		t.Fatalf("share anyone: %+v", r)
	}
	r = runT(t, "", "user", "share", "team", "INBOX", "bob", "none", "--data", dir)
	if r.code != 0 || r.stdout != "team INBOX: team lrswipkxtea, anyone lr\n" {
		t.Fatalf("unshare: %+v", r)
	}
	if r := runT(t, "", "user", "acl", "team", "INBOX", "--data", dir); r.code != 0 || r.stdout != "team INBOX: team lrswipkxtea, anyone lr\n" {
		t.Fatalf("acl: %+v", r)
	}
	for _, bad := range [][]string{{"team", "INBOX", "bob", "lrQ"}, {"team", "INBOX", "team", "lr"}, {"team", "INBOX", "-bob", "lr"}} {
		if r := runT(t, "", append(append([]string{"user", "share"}, bad...), "--data", dir)...); r.code != exitUsage {
			t.Fatalf("%q: %+v", bad, r)
		}
	}
	if r := runT(t, "", "user", "share", "team", "Nope", "bob", "lr", "--data", dir); r.code != exitError {
		t.Fatalf("missing mailbox: %+v", r)
	}
	if r := runT(t, "", "user", "acl", "nobody", "INBOX", "--data", dir); r.code != exitError {
		t.Fatalf("missing user: %+v", r)
	}
}
