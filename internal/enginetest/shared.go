package enginetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Main runs the tests of a package and then stops every engine this test
// binary started, shared or (if a test's cleanup did not) per test, and
// removes their data. Call it from TestMain:
//
//	func TestMain(m *testing.M) { enginetest.Main(m) }
//
// It fails the binary, naming the engine and its log, if an engine had
// exited on its own during the tests or did not stop on SIGTERM; the log and
// data of such an engine are kept for reading.
func Main(m *testing.M) {
	os.Exit(run(m, false))
}

// MainNoLeaks is Main followed by a goleak check: once the tests have
// passed and the engines have stopped, it fails the binary if a goroutine is
// still running that opts do not ignore. Packages that start goroutines use
// it instead of goleak.VerifyTestMain, which cannot be combined with Main;
// unlike goleak.VerifyNone in a test, it also works with parallel tests.
func MainNoLeaks(m *testing.M, opts ...goleak.Option) {
	os.Exit(run(m, true, opts...))
}

func run(m *testing.M, leaks bool, opts ...goleak.Option) int {
	code := m.Run()
	if err := stopAll(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: enginetest.Main: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	if leaks && code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: enginetest.MainNoLeaks: goroutines still running after the tests: %v\n", err)
			code = 1
		}
	}
	return code
}

// registry holds every process this binary started and not yet discarded.
var registry struct {
	sync.Mutex
	shared  []*Process        // stopped only by Main
	perTest map[*Process]bool // stopped at their test's cleanup
}

func registerShared(p *Process) {
	registry.Lock()
	defer registry.Unlock()
	registry.shared = append(registry.shared, p)
}

func registerPerTest(p *Process, on bool) {
	registry.Lock()
	defer registry.Unlock()
	if registry.perTest == nil {
		registry.perTest = make(map[*Process]bool)
	}
	if on {
		registry.perTest[p] = true
	} else {
		delete(registry.perTest, p)
	}
}

// stopAll stops all registered processes at once and removes the data
// directories of those that stopped cleanly.
func stopAll() error {
	registry.Lock()
	procs := append([]*Process(nil), registry.shared...)
	leftover := len(procs)
	for p := range registry.perTest {
		procs = append(procs, p)
	}
	registry.shared, registry.perTest = nil, nil
	registry.Unlock()

	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			crashed, err := p.stop()
			errs[i] = errors.Join(crashed, err)
			if i >= leftover {
				errs[i] = errors.Join(errs[i], fmt.Errorf("enginetest: %s on %s was still running after the tests; the cleanup of the test that started it did not run", p.Name, p.Addr))
			}
			if errs[i] == nil {
				_ = os.RemoveAll(p.Dir)
			} else {
				errs[i] = fmt.Errorf("%w (data kept in %s)", errs[i], p.Dir)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// once computes a value the first time it is asked for and returns that
// value, or that error, every time after. Callers wait while it is computed.
type once[T any] struct {
	mu   sync.Mutex
	done bool
	v    T
	err  error
}

func (o *once[T]) get(f func() (T, error)) (T, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.done {
		o.v, o.err = f()
		o.done = true
	}
	return o.v, o.err
}

// startShared starts a shared engine with start (retried on a port race) in
// a fresh data directory and registers it for Main.
func startShared(t testing.TB, kind string, start func(dir string) (*Process, error)) (*Process, error) {
	t.Helper()
	dir, err := newDir(kind)
	if err != nil {
		return nil, err
	}
	p, err := startWithRetry(func() (*Process, error) { return start(dir) })
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	registerShared(p)
	t.Logf("enginetest: started shared %s on %s in %v (log %s)", p.Name, p.Addr, p.startUp.Round(time.Millisecond), p.LogPath)
	return p, nil
}

// startPerTest starts an engine for test t alone, stopped and removed at
// t.Cleanup.
func startPerTest(t testing.TB, kind string, start func(dir string) (*Process, error)) *Process {
	t.Helper()
	dir, err := newDir(kind)
	if err != nil {
		t.Fatal(err)
	}
	p, err := startWithRetry(func() (*Process, error) { return start(dir) })
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatal(err)
	}
	registerPerTest(p, true)
	t.Cleanup(func() {
		_, err := p.stop()
		registerPerTest(p, false)
		if err != nil {
			t.Error(err)
			return
		}
		_ = os.RemoveAll(p.Dir)
	})
	t.Logf("enginetest: started %s on %s in %v (log %s)", p.Name, p.Addr, p.startUp.Round(time.Millisecond), p.LogPath)
	return p
}

// dirPrefix names the data directories this package makes, so that those
// of dead test binaries can be found and removed.
const dirPrefix = "couponpush-engine-"

// ownerFile, in a data directory, holds the pid of the test binary that owns it.
const ownerFile = ".owner"

var sweep sync.Once

// newDir makes a fresh data directory for an engine of the given kind.
func newDir(kind string) (string, error) {
	root, err := dataRoot()
	if err != nil {
		return "", err
	}
	sweep.Do(func() { sweepStale(root) })
	dir, err := os.MkdirTemp(root, dirPrefix+kind+"-")
	if err != nil {
		return "", fmt.Errorf("enginetest: making a data directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return "", fmt.Errorf("enginetest: making a data directory: %w", err)
	}
	return dir, nil
}

// dataRoot returns the directory under which engine data lives: the system
// temporary directory unless it is a memory file system (MariaDB data must be
// on disk to be durable), else <cache>/couponpush/tmp.
func dataRoot() (string, error) {
	if d := os.TempDir(); !onTmpfs(d) {
		return d, nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("enginetest: %s is on tmpfs and there is no cache directory: %w", os.TempDir(), err)
	}
	d := filepath.Join(c, "couponpush", "tmp")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("enginetest: making %s: %w", d, err)
	}
	return d, nil
}

// sweepStale removes data directories whose test binary has died (and whose
// engines got SIGTERM from the kernel) at least a minute ago.
func sweepStale(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), dirPrefix) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == os.Getpid() || pidAlive(pid) {
			continue
		}
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < time.Minute {
			continue
		}
		_ = os.RemoveAll(dir)
	}
}
