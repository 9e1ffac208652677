package main

import (
	"slices"
	"testing"
)

func TestQresyncWorkloadAgainstTern(t *testing.T) {
	addr := startTern(t, "user1", "user2")
	seed := runBench(t, addr, "--messages", "400", "--duration", "1m", "qresync-seed")
	if seed.Extra["total_messages"] != 400 {
		t.Fatalf("seeded %v messages, want 400", seed.Extra["total_messages"])
	}
	r := runBench(t, addr, "--count", "4", "--duration", "1m", "qresync")
	if r.Extra["rounds"] != 4 {
		t.Fatalf("rounds = %v, want 4", r.Extra["rounds"])
	}
	// Each round expunges 10 messages.
	if r.Extra["messages"] != 400-4*qrExpunges {
		t.Errorf("messages after the run = %v, want %d", r.Extra["messages"], 400-4*qrExpunges)
	}
	for _, v := range []string{"qresync", "qresync_known"} {
		if r.Extra[v+"_exact_rounds"] != 4 {
			t.Errorf("%s exact in %v of 4 rounds", v, r.Extra[v+"_exact_rounds"])
		}
		if r.Extra[v+"_bytes_p50"] <= 0 || r.Extra[v+"_bytes_p50"]*3 > r.Extra["full_resync_bytes_p50"] {
			t.Errorf("%s sent %v bytes; full resync %v", v, r.Extra[v+"_bytes_p50"], r.Extra["full_resync_bytes_p50"])
		}
	}
	if op := findOp(r.Ops, "qresync"); op.Count != 4 || op.Items != 4*qrFlagChanges {
		t.Errorf("qresync op: %+v", op)
	}
	if op := findOp(r.Ops, "full-resync"); op.Count != 4 {
		t.Errorf("full-resync op: %+v", op)
	}
}

func TestParseUIDSetAndFetchUID(t *testing.T) {
	u, err := parseUIDSet("3,5:7,10", 100)
	if err != nil || !slices.Equal(u, []uint32{3, 5, 6, 7, 10}) {
		t.Fatalf("parseUIDSet = %v, %v", u, err)
	}
	if _, err := parseUIDSet("1:4294967295", 1000); err == nil {
		t.Fatal("huge set accepted")
	}
	for line, want := range map[string]uint32{
		`* 5 FETCH (FLAGS (\Flagged) UID 77 MODSEQ (9))`: 77,
		`* 5 FETCH (UID 8 FLAGS ())`:                     8,
		`* 5 FETCH (X-GUID 1 UID 9)`:                     9,
	} {
		if got, ok := fetchUID([]byte(line)); !ok || got != want {
			t.Errorf("fetchUID(%q) = %d, %v", line, got, ok)
		}
	}
	missing, extra := diffUIDs([]uint32{1, 2, 3}, []uint32{2, 3, 4})
	if !slices.Equal(missing, []uint32{4}) || extra != 1 {
		t.Errorf("diffUIDs = %v, %d", missing, extra)
	}
}
