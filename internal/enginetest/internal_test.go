package enginetest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBinPathMissing(t *testing.T) {
	t.Setenv("COUPONPUSH_BIN", t.TempDir())
	t.Setenv("PATH", t.TempDir())
	for _, name := range []string{"nsqd", "consul", "no-such-engine"} {
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
