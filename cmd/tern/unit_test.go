package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/config"
)

const unitPath = "../../contrib/tern.service"

// parseUnit reads a systemd unit file into section -> key -> values (a
// key may repeat). Comments and blank lines are skipped.
func parseUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unit := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			unit[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			k = strings.TrimSpace(k)
			unit[section][k] = append(unit[section][k], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return unit
}

func TestSystemdUnit(t *testing.T) {
	unit := parseUnit(t, unitPath)
	svc := unit["Service"]
	if svc == nil || unit["Unit"] == nil || unit["Install"] == nil {
		t.Fatalf("sections missing: %v", unit)
	}
	for k, want := range map[string]string{
		"User":                    "tern",
		"ExecStart":               "/usr/local/bin/tern serve --config /etc/tern/tern.toml",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"Restart":                 "on-failure",
		"StateDirectory":          "tern",
		"ReadWritePaths":          "/var/lib/tern",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"NoNewPrivileges":         "yes",
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
	} {
		if got := svc[k]; len(got) != 1 || got[0] != want {
			t.Errorf("[Service] %s = %q, want %q", k, got, want)
		}
	}
	if !slices.Contains(unit["Install"]["WantedBy"], "multi-user.target") {
		t.Errorf("[Install] WantedBy = %q", unit["Install"]["WantedBy"])
	}
	// Room for every connection tern accepts by default, plus files.
	if n, err := strconv.Atoi(strings.Join(svc["LimitNOFILE"], "")); err != nil || n < config.Default().Limits.MaxConns+1024 {
		t.Errorf("LimitNOFILE = %q: want at least limits.max_conns + 1024", svc["LimitNOFILE"])
	}
	// systemd stops with SIGTERM (its default), which tern handles.
	if ks := svc["KillSignal"]; len(ks) > 0 && ks[0] != "SIGTERM" {
		t.Errorf("KillSignal = %q", ks)
	}
}

// The unit's ExecStart must be a command line tern serve accepts: run
// its arguments through serve's own flag parsing (-h stops before the
// server starts, after every earlier flag has been parsed).
func TestSystemdUnitExecStartFlags(t *testing.T) {
	argv := strings.Fields(parseUnit(t, unitPath)["Service"]["ExecStart"][0])
	if argv[0] != "/usr/local/bin/tern" || argv[1] != "serve" {
		t.Fatalf("ExecStart %q is not tern serve", argv)
	}
	r := runT(t, "", append(argv[1:], "-h")...)
	if r.code != exitOK || !strings.Contains(r.stdout, "Usage: tern serve") {
		t.Fatalf("tern %q -h: %+v", argv[1:], r)
	}
	// The check can fail: a flag serve lacks is a usage error.
	if r := runT(t, "", append(argv[1:], "--no-such-flag", "-h")...); r.code != exitUsage {
		t.Fatalf("unknown flag accepted: %+v", r)
	}
}

// systemd's own parser, where installed: any complaint about the unit
// fails. ExecStart points at this test binary, since verify wants an
// executable there.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tern.service")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(data), "/usr/local/bin/tern", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", p).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "tern.service") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}
