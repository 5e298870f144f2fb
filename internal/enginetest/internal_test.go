package enginetest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBinPathMissing(t *testing.T) {
	t.Setenv("COUPONPUSH_BIN", t.TempDir())
	t.Setenv("PATH", t.TempDir())
	for _, name := range []string{"nsqd", "consul", "promtool", "no-such-engine"} {
		t.Run(name, func(t *testing.T) {
			_, err := binPath(name)
			if err == nil || !strings.Contains(err.Error(), "scripts/engines.sh install") {
				t.Errorf("binPath(%s) error = %v, want one that says to run scripts/engines.sh install", name, err)
			}
		})
	}
}

// The versions the helpers look for are the ones scripts/engines.sh builds.
func TestToolVersionsMatchGoMod(t *testing.T) {
	for _, tc := range []struct{ gomod, module, version string }{
		{"../../tools/nsqd/go.mod", "github.com/nsqio/nsq", NSQDVersion},
		{"../../tools/consul/go.mod", "github.com/hashicorp/consul", ConsulVersion},
		{"../../tools/promtool/go.mod", "github.com/prometheus/prometheus", PromtoolVersion},
	} {
		t.Run(tc.module, func(t *testing.T) {
			b, err := os.ReadFile(tc.gomod)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.module + " v" + tc.version + "\n"; !strings.Contains(string(b), want) {
				t.Errorf("%s does not require %q", tc.gomod, strings.TrimSpace(want))
			}
		})
	}
}

func TestReadable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"TestQueue", "TestQueue"},
		{"TestQueue/cancel_after_pop", "TestQueue_cancel_after_p"},
		{"TestX/#01", "TestX_01"},
		{"7up", "t7up"},
		{"///", "t"},
		{"a__b--c", "a_b_c"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := readable(tc.in, 24); got != tc.want {
				t.Errorf("readable(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestFreePortsDistinct(t *testing.T) {
	ps, err := freePorts(50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ps {
		if seen[p] || p < portLow || p >= ephemeralLow() {
			t.Errorf("port %d: repeated or outside [%d, %d)", p, portLow, ephemeralLow())
		}
		seen[p] = true
	}
}

func TestSweepStale(t *testing.T) {
	root := t.TempDir()
	mk := func(name, owner string) string {
		d := filepath.Join(root, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(d, ownerFile), []byte(owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
		return d
	}
	dead := mk(dirPrefix+"redis-dead", "999999999")
	mine := mk(dirPrefix+"redis-mine", strconv.Itoa(os.Getpid()))
	noOwner := mk(dirPrefix+"redis-noowner", "")
	other := mk("someone-else", "999999999")
	sweepStale(root)
	for d, want := range map[string]bool{dead: false, mine: true, noOwner: true, other: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(d), err == nil, want)
		}
	}
}

// fakeNSQD installs, as the nsqd that binPath finds, a script that runs
// script (sh) first and then the real nsqd.
func fakeNSQD(t *testing.T, script string) {
	t.Helper()
	real, err := binPath("nsqd")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	body := "#!/bin/sh\n" + script + "\nexec " + real + ` "$@"` + "\n"
	if err := os.WriteFile(filepath.Join(bin, "nsqd-"+NSQDVersion), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("COUPONPUSH_BIN", bin)
}

func TestStartRetriesOnPortRace(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "raced")
	fakeNSQD(t, `[ -e `+flag+` ] || { touch `+flag+`; echo "listen tcp: bind: address already in use" >&2; exit 1; }`)
	p := startPerTest(t, "nsqd", nsqdProcess)
	if !p.Running() {
		t.Fatal("not running after a retried start")
	}
	if _, err := os.Stat(flag); err != nil {
		t.Fatalf("the first attempt did not run: %v", err)
	}
}

func TestStartFailureNamesEngineAndLog(t *testing.T) {
	fakeNSQD(t, `echo "FATAL: disk on fire" >&2; exit 3`)
	dir := t.TempDir()
	_, err := startWithRetry(func() (*Process, error) { return nsqdProcess(dir) })
	if err == nil {
		t.Fatal("start of a failing engine succeeded")
	}
	for _, want := range []string{"nsqd", "exited before it answered", "disk on fire", filepath.Join(dir, "nsqd.log")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestStopReportsCrash(t *testing.T) {
	dir := t.TempDir()
	p, err := redisProcess(dir, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	pid := p.cmd.Process.Pid
	p.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); p.Running(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("still running 10s after SIGKILL")
		}
	}
	crashed, err := p.stop()
	if err != nil || crashed == nil || !strings.Contains(crashed.Error(), "exited on its own") {
		t.Fatalf("stop of a crashed engine = %v, %v; want it reported as exited on its own", crashed, err)
	}
}
