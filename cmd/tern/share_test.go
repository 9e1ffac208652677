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

func TestSharedFoldersCommand(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	if r := runT(t, "", "shared", "list", "--data", dir); r.code != exitError {
		t.Fatalf("list before any: %+v", r)
	}
	runT(t, "pw\n", "user", "add", "bob", "--data", dir)
	if r := runT(t, "", "shared", "create", "Team/News", "--data", dir); r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	if r := runT(t, "", "shared", "share", "Team", "anyone", "lr", "--data", dir); r.code != 0 || r.stdout != "#shared Team: #shared lrswipkxtea, anyone lr\n" {
		t.Fatalf("share: %+v", r)
	}
	runT(t, "", "shared", "share", "Team/News", "bob", "lrsi", "--data", dir)
	if r := runT(t, "", "shared", "list", "--data", dir); r.code != 0 || r.stdout != "Team: anyone lr\nTeam/News: bob lrsi\n" {
		t.Fatalf("list: %+v", r)
	}
	if r := runT(t, "", "shared", "delete", "Team/News", "--data", dir); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	if r := runT(t, "", "shared", "acl", "Team/News", "--data", dir); r.code != exitError {
		t.Fatalf("acl of a deleted folder: %+v", r)
	}
	if r := runT(t, "pw\n", "user", "add", "#shared", "--data", dir); r.code != exitUsage {
		t.Fatalf("user add #shared: %+v", r)
	}
	// The account of the shared folders is no user.
	if r := runT(t, "", "user", "list", "--data", dir); r.code != 0 || r.stdout != "bob\n" {
		t.Fatalf("user list: %+v", r)
	}
}
