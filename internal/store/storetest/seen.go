package storetest

import (
	"slices"
	"testing"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/privseen"
)

// hasSeen reports whether a sees \Seen on uid.
func hasSeen(t *testing.T, a store.Account, id int64, uid uint32) bool {
	t.Helper()
	return slices.Contains(flagsOf(t, a, id, uid), `\Seen`)
}

// seenUIDs lists the UIDs of id that a sees with \Seen.
func seenUIDs(t *testing.T, a store.Account, id int64) []uint32 {
	t.Helper()
	var out []uint32
	for _, m := range fetchAll(t, a, id, uidsOf(t, a, id), store.WantFlags) {
		if slices.Contains(m.Flags, `\Seen`) {
			out = append(out, m.UID)
		}
	}
	return out
}

// testPrivateSeen: the backend's private \Seen states
// (store.PrivateSeenStore) and, through privseen.Wrap, what the owner and
// two other users see of one mailbox: flags, counters, modseqs and
// changes per user, STORE in its three forms, UNCHANGEDSINCE, APPEND,
// COPY, MOVE, expunge, notification, persistence.
func testPrivateSeen(t *testing.T, e *env) {
	ctx := e.ctx
	alice := e.user("alice")
	e.user("bob")
	e.user("carol")
	if err := alice.CreateMailbox(ctx, "Team", ""); err != nil {
		t.Fatal(err)
	}
	if err := alice.CreateMailbox(ctx, "Archive", ""); err != nil {
		t.Fatal(err)
	}
	team := mbox(t, alice, "Team")
	setACL(t, alice, "Team", "bob", store.FlagsReplace, "lrswi", "lrswi")
	uids := appendN(t, alice, "Team", 1, 4)
	if _, err := alice.StoreFlags(ctx, team.ID, uids[:1], store.FlagsAdd, []string{`\Seen`}, 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.StoreFlags(ctx, team.ID, uids[1:2], store.FlagsAdd, []string{`\Flagged`}, 0, false); err != nil {
		t.Fatal(err)
	}
	bob := privseen.Wrap(e.account("alice"), "bob")
	carol := privseen.Wrap(e.account("alice"), "carol")
	if privseen.Wrap(alice, "alice") != alice {
		t.Fatal("Wrap of the owner's own account is not the account")
	}

	// The owner's \Seen is not another user's; the other flags are shared.
	equal(t, "bob's \\Seen at first", seenUIDs(t, bob, team.ID), nil)
	equal(t, "bob's flags of UID 2", flagsOf(t, bob, team.ID, uids[1]), []string{`\Flagged`})
	equal(t, "bob's flags of UID 1", flagsOf(t, bob, team.ID, uids[0]), nil)

	before := status(t, alice, "Team").HighestModSeq
	e.rec.Take()
	res, err := bob.StoreFlags(ctx, team.ID, uids[1:3], store.FlagsAdd, []string{`\Seen`}, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Updated) != 2 || !slices.Equal(res.Updated[0].Flags, []string{`\Flagged`, `\Seen`}) || res.Updated[0].ModSeq <= before {
		t.Fatalf("bob's +FLAGS \\Seen: %+v", res)
	}
	equal(t, "bob's \\Seen", seenUIDs(t, bob, team.ID), uids[1:3])
	equal(t, "alice's \\Seen", seenUIDs(t, alice, team.ID), uids[:1])
	equal(t, "carol's \\Seen", seenUIDs(t, carol, team.ID), nil)
	after := status(t, alice, "Team").HighestModSeq
	if after <= before {
		t.Fatalf("HIGHESTMODSEQ %d after bob's \\Seen, was %d", after, before)
	}
	if calls := e.rec.Take(); !slices.Contains(calls, Notification{"alice", team.ID, after}) {
		t.Fatalf("bob's \\Seen notified %+v, want alice's mailbox %d at %d", calls, team.ID, after)
	}

	// Counters per user.
	for _, c := range []struct {
		who    string
		a      store.Account
		unseen uint32
		first  uint32
	}{{"alice", alice, 3, uids[1]}, {"bob", bob, 2, uids[0]}, {"carol", carol, 4, uids[0]}} {
		st := status(t, c.a, "Team")
		if st.Unseen != c.unseen || st.FirstUnseen != c.first || st.Messages != 4 {
			t.Fatalf("%s's STATUS: unseen %d first %d messages %d, want %d %d 4", c.who, st.Unseen, st.FirstUnseen, st.Messages, c.unseen, c.first)
		}
		snap, _, err := c.a.Snapshot(ctx, team.ID)
		if err != nil || snap.Unseen != c.unseen || snap.FirstUnseen != c.first {
			t.Fatalf("%s's Snapshot: unseen %d first %d (%v), want %d %d", c.who, snap.Unseen, snap.FirstUnseen, err, c.unseen, c.first)
		}
	}

	// Modseqs and changes per user: bob's change is a change for bob only.
	cs, err := alice.Changes(ctx, team.ID, before, uids[3])
	if err != nil || len(cs.Changed) != 0 || cs.HighestModSeq != after {
		t.Fatalf("alice's changes since bob's \\Seen: %+v, %v", cs, err)
	}
	cs, err = carol.Changes(ctx, team.ID, before, uids[3])
	if err != nil || len(cs.Changed) != 0 {
		t.Fatalf("carol's changes since bob's \\Seen: %+v, %v", cs, err)
	}
	cs, err = bob.Changes(ctx, team.ID, before, uids[3])
	if err != nil || len(cs.Changed) != 2 || cs.Changed[0].UID != uids[1] || cs.Changed[1].UID != uids[2] ||
		cs.Changed[1].ModSeq != after || !slices.Equal(cs.Changed[1].Flags, []string{`\Seen`}) {
		t.Fatalf("bob's changes since his \\Seen: %+v, %v", cs, err)
	}
	if m := fetchAll(t, alice, team.ID, uids[2:3], store.WantFlags); m[0].ModSeq >= after {
		t.Fatalf("alice sees modseq %d on UID 3, bob's change was %d", m[0].ModSeq, after)
	}
	// Alice's own \Seen change shows to bob only as a modseq.
	if _, err := alice.StoreFlags(ctx, team.ID, uids[3:], store.FlagsAdd, []string{`\Seen`}, 0, false); err != nil {
		t.Fatal(err)
	}
	cs, err = bob.Changes(ctx, team.ID, after, uids[3])
	if err != nil || len(cs.Changed) != 1 || len(cs.Changed[0].Flags) != 0 {
		t.Fatalf("bob's changes since alice's \\Seen: %+v, %v", cs, err)
	}

	// STORE -FLAGS and FLAGS: FLAGS replaces the shared flags and the
	// user's \Seen, never the owner's.
	if _, err := bob.StoreFlags(ctx, team.ID, uids[1:2], store.FlagsRemove, []string{`\Seen`}, 0, false); err != nil {
		t.Fatal(err)
	}
	if hasSeen(t, bob, team.ID, uids[1]) {
		t.Fatal("bob's -FLAGS \\Seen left \\Seen")
	}
	res, err = bob.StoreFlags(ctx, team.ID, uids[:1], store.FlagsReplace, []string{`\Answered`, `\Seen`}, 0, false)
	if err != nil || len(res.Updated) != 1 || !slices.Equal(res.Updated[0].Flags, []string{`\Answered`, `\Seen`}) {
		t.Fatalf("bob's FLAGS (\\Answered \\Seen): %+v, %v", res, err)
	}
	equal(t, "alice's flags of UID 1 after bob's FLAGS", flagsOf(t, alice, team.ID, uids[0]), []string{`\Answered`, `\Seen`})
	if _, err := bob.StoreFlags(ctx, team.ID, uids[:1], store.FlagsReplace, []string{"$Work"}, 0, false); err != nil {
		t.Fatal(err)
	}
	equal(t, "bob's flags of UID 1 after FLAGS ($Work)", flagsOf(t, bob, team.ID, uids[0]), []string{"$Work"})
	equal(t, "alice's flags of UID 1 after bob's FLAGS ($Work)", flagsOf(t, alice, team.ID, uids[0]), []string{`\Seen`, "$Work"})
	equal(t, "carol's flags of UID 1", flagsOf(t, carol, team.ID, uids[0]), []string{"$Work"})

	// UNCHANGEDSINCE sees the user's own \Seen changes.
	m3 := fetchAll(t, bob, team.ID, uids[2:3], store.WantFlags)[0]
	if _, err := bob.StoreFlags(ctx, team.ID, uids[2:3], store.FlagsRemove, []string{`\Seen`}, 0, false); err != nil {
		t.Fatal(err)
	}
	res, err = bob.StoreFlags(ctx, team.ID, uids[2:3], store.FlagsAdd, []string{`\Seen`}, m3.ModSeq, true)
	if err != nil || !slices.Equal(res.Modified, uids[2:3]) || len(res.Updated) != 0 {
		t.Fatalf("bob's UNCHANGEDSINCE over his own change: %+v, %v", res, err)
	}
	m3 = fetchAll(t, bob, team.ID, uids[2:3], store.WantFlags)[0]
	res, err = bob.StoreFlags(ctx, team.ID, uids[2:3], store.FlagsAdd, []string{`\Seen`}, m3.ModSeq, true)
	if err != nil || len(res.Modified) != 0 || len(res.Updated) != 1 {
		t.Fatalf("bob's UNCHANGEDSINCE current: %+v, %v", res, err)
	}
	// Carol's older modseq of UID 3 is not touched by bob's change.
	if c3 := fetchAll(t, carol, team.ID, uids[2:3], store.WantFlags)[0]; c3.ModSeq >= m3.ModSeq {
		t.Fatalf("carol sees modseq %d on UID 3 after bob's changes up to %d", c3.ModSeq, m3.ModSeq)
	}

	// APPEND with \Seen: the appender's.
	ar, err := bob.Append(ctx, "Team", []store.NewMessage{{Body: Msg(9), Flags: []string{`\Seen`, `\Draft`}}})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "bob's flags of his APPEND", flagsOf(t, bob, team.ID, ar.UIDs[0]), []string{`\Draft`, `\Seen`})
	equal(t, "alice's flags of bob's APPEND", flagsOf(t, alice, team.ID, ar.UIDs[0]), []string{`\Draft`})

	// COPY and MOVE carry the user's \Seen (and the owner's).
	cr, err := bob.Copy(ctx, team.ID, []uint32{uids[0], uids[2]}, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	archive := mbox(t, alice, "Archive")
	equal(t, "bob's \\Seen in the copies", seenUIDs(t, bob, archive.ID), cr.DestUIDs[1:])
	equal(t, "alice's \\Seen in the copies", seenUIDs(t, alice, archive.ID), cr.DestUIDs[:1])
	mr, err := bob.Move(ctx, archive.ID, cr.DestUIDs, "Team")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "bob's \\Seen of the moved", seenUIDs(t, bob, team.ID), []uint32{uids[2], ar.UIDs[0], mr.DestUIDs[1]})

	// Expunged messages take their states with them.
	if _, err := alice.Expunge(ctx, team.ID, uids[2:3], false); err != nil {
		t.Fatal(err)
	}
	states, err := alice.PrivateSeen(ctx, team.ID, "bob", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if s.UID == uids[2] {
			t.Fatalf("bob's state of expunged UID %d stayed: %+v", s.UID, states)
		}
	}
	got, err := alice.PrivateSeen(ctx, team.ID, "bob", nil, after)
	if err != nil || len(got) == 0 || slices.ContainsFunc(got, func(s store.SeenState) bool { return s.ModSeq <= after }) {
		t.Fatalf("PrivateSeen since %d: %+v, %v", after, got, err)
	}

	// The count agrees with the states, expunged messages left out.
	all, bobSeen := uidsOf(t, alice, team.ID), seenUIDs(t, bob, team.ID)
	var firstUnseen uint32
	for _, u := range all {
		if !slices.Contains(bobSeen, u) {
			firstUnseen = u
			break
		}
	}
	n, first, err := alice.PrivateSeenCount(ctx, team.ID, "bob")
	if err != nil || int(n) != len(bobSeen) || first != firstUnseen {
		t.Fatalf("PrivateSeenCount = %d, %d, %v; want %d, %d", n, first, err, len(bobSeen), firstUnseen)
	}
	if n, first, err := alice.PrivateSeenCount(ctx, team.ID, "nobody"); err != nil || n != 0 || first != all[0] {
		t.Fatalf("PrivateSeenCount of a user without states = %d, %d, %v", n, first, err)
	}

	// The owner has no private \Seen; missing messages are skipped.
	_, err = alice.SetPrivateSeen(ctx, team.ID, "alice", uids[:1], true)
	wantErr(t, "SetPrivateSeen of the owner", err, store.ErrNotAllowed)
	out, err := alice.SetPrivateSeen(ctx, team.ID, "carol", []uint32{uids[2], uids[3], 999}, true)
	if err != nil || len(out) != 1 || out[0].UID != uids[3] || !out[0].Seen {
		t.Fatalf("SetPrivateSeen over an expunged and a missing UID: %+v, %v", out, err)
	}
	_, err = alice.PrivateSeen(ctx, 99999, "bob", nil, 0)
	wantErr(t, "PrivateSeen of a missing mailbox", err, store.ErrNoSuchMailbox)

	// Persistence.
	wantBob := seenUIDs(t, bob, team.ID)
	e.reopen()
	bob = privseen.Wrap(e.account("alice"), "bob")
	equal(t, "bob's \\Seen after reopen", seenUIDs(t, bob, team.ID), wantBob)

	// A new user of a deleted user's name finds none of their states.
	if err := e.st.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	e.user("bob")
	bob = privseen.Wrap(e.account("alice"), "bob")
	equal(t, "new bob's \\Seen", seenUIDs(t, bob, team.ID), nil)
}
