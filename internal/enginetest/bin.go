package enginetest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Versions of the tools built from the module proxy by `scripts/engines.sh
// install`; they match tools/nsqd/go.mod, tools/consul/go.mod and
// tools/promtool/go.mod (a test checks this). PromtoolVersion is the version
// of the github.com/prometheus/prometheus module (v0.316.0 is Prometheus
// 3.16.0).
const (
	NSQDVersion     = "1.2.1"
	ConsulVersion   = "1.20.0"
	PromtoolVersion = "0.316.0"
)

// installHint is the command that puts every engine on the machine.
const installHint = "run `scripts/engines.sh install` (or `make engines`) from the repository root"

// Bin returns the path of the engine binary name: "nsqd", "consul" and
// "promtool" are the versioned builds in the couponpush cache; any other name ("redis-server",
// "redis-cli", "mariadbd", "mariadb-install-db") is looked up in PATH and the
// sbin directories. If it is missing, the test fails saying how to install it.
func Bin(t testing.TB, name string) string {
	t.Helper()
	p, err := binPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// BinDir returns the cache directory of the built tools:
// $COUPONPUSH_BIN, else $XDG_CACHE_HOME/couponpush/bin, else
// $HOME/.cache/couponpush/bin.
func BinDir() (string, error) {
	if d := os.Getenv("COUPONPUSH_BIN"); d != "" {
		return d, nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("enginetest: finding the tool cache: %w", err)
	}
	return filepath.Join(c, "couponpush", "bin"), nil
}

func binPath(name string) (string, error) {
	var version string
	switch name {
	case "nsqd":
		version = NSQDVersion
	case "consul":
		version = ConsulVersion
	case "promtool":
		version = PromtoolVersion
	}
	if version != "" {
		dir, err := BinDir()
		if err != nil {
			return "", err
		}
		p := filepath.Join(dir, name+"-"+version)
		if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("enginetest: %s %s is not built at %s: %s", name, version, p, installHint)
		}
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("enginetest: looking for %s: %w", name, err)
		}
	}
	return "", fmt.Errorf("enginetest: %s is not installed: %s", name, installHint)
}
