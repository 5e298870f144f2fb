package enginetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopTimeout bounds how long Stop waits after SIGTERM before it kills.
const stopTimeout = 60 * time.Second

// Process is an engine process started by this package: a shared one, or
// one started for a single test by StartRedis, StartMySQL, StartNSQD or
// StartConsul. Its methods are safe for concurrent use.
type Process struct {
	// Name is the engine's binary name, for messages: "redis-server",
	// "mariadbd", "nsqd", "consul".
	Name string
	// Addr is the main address (host:port): Redis and MariaDB clients, the
	// nsqd TCP protocol, the Consul HTTP API.
	Addr string
	// HTTPAddr is nsqd's HTTP address; empty for other engines.
	HTTPAddr string
	// Dir is the data directory; it lives until the process is discarded, so
	// Restart finds the same data.
	Dir string
	// LogPath is the file that receives the engine's stdout and stderr,
	// appended to across restarts.
	LogPath string

	path         string
	args         []string
	ready        func(ctx context.Context) error
	readyTimeout time.Duration

	mu      sync.Mutex
	cmd     *exec.Cmd // nil when not running
	frozen  bool      // stopped by Freeze, not yet thawed
	startUp time.Duration
}

// freezeTimeout bounds how long Freeze waits for the kernel to stop every
// thread of the process.
const freezeTimeout = 10 * time.Second

// Freeze sends SIGSTOP to the process and everything it forked, and waits
// until the kernel has stopped it: its sockets stay open and the kernel
// still accepts connections on them, but nothing answers, like an engine
// hung on a dead disk. Thaw resumes it; so do Stop, Kill, Restart and the
// cleanup of the test that started it. Only engines of one test (StartRedis,
// StartMySQL, ...) may be frozen: the shared ones serve other tests.
func (p *Process) Freeze(t testing.TB) {
	t.Helper()
	if err := p.freeze(); err != nil {
		t.Fatal(err)
	}
}

// Thaw sends SIGCONT to a process that Freeze stopped; the engine goes on
// where it was, with the connections it had. Thawing a process that is not
// frozen does nothing.
func (p *Process) Thaw(t testing.TB) {
	t.Helper()
	if err := p.thaw(); err != nil {
		t.Fatal(err)
	}
}

func (p *Process) freeze() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("enginetest: freezing %s on %s: it is not running", p.Name, p.Addr)
	}
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(-pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("enginetest: freezing %s: %w", p.Name, err)
	}
	p.frozen = true
	deadline := time.Now().Add(freezeTimeout)
	for !stopped(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("enginetest: %s on %s did not stop within %v of SIGSTOP", p.Name, p.Addr, freezeTimeout)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func (p *Process) thaw() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	return p.thawLocked(p.cmd.Process.Pid)
}

// thawLocked resumes process group pid if Freeze stopped it; p.mu is held.
func (p *Process) thawLocked(pid int) error {
	if !p.frozen {
		return nil
	}
	p.frozen = false
	if err := syscall.Kill(-pid, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("enginetest: thawing %s: %w", p.Name, err)
	}
	return nil
}

// Stop sends SIGTERM and waits until the process has exited; it kills it
// and fails the test if it is still running after a minute. Stopping a
// stopped process does nothing.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	if _, err := p.stop(); err != nil {
		t.Fatal(err)
	}
}

// Kill sends SIGKILL to the process and everything it forked (for example a
// Redis background save) and waits until it has exited, like a machine that
// loses power. Killing a stopped process does nothing.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if err := p.kill(); err != nil {
		t.Fatal(err)
	}
}

// Restart stops the process if it runs, starts it again on the same ports
// with the same data directory and arguments, and waits until it answers.
func (p *Process) Restart(t testing.TB) {
	t.Helper()
	if _, err := p.stop(); err != nil {
		t.Fatal(err)
	}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("enginetest: restarted %s on %s in %v", p.Name, p.Addr, p.startUp.Round(time.Millisecond))
}

// Running reports whether the process has been started and not stopped or
// killed through its methods, and has not exited on its own.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !exited(p.cmd.Process.Pid)
}

// start launches the process and waits until ready answers.
func (p *Process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("enginetest: %s on %s is already running", p.Name, p.Addr)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("enginetest: opening the log of %s: %w", p.Name, err)
	}
	fmt.Fprintf(logf, "==== enginetest %s: %s %s\n", time.Now().Format(time.RFC3339Nano), p.path, strings.Join(p.args, " "))
	cmd := exec.Command(p.path, p.args...)
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = logf, logf // an *os.File: no copying goroutine
	cmd.SysProcAttr = sysProcAttr()
	t0 := time.Now()
	err = cmd.Start()
	_ = logf.Close() // the child has its own descriptor
	if err != nil {
		return fmt.Errorf("enginetest: starting %s: %w", p.Name, err)
	}
	p.cmd = cmd
	if err := p.waitReady(t0); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		p.cmd = nil
		return err
	}
	p.startUp = time.Since(t0)
	return nil
}

// waitReady polls p.ready, with growing pauses, until it succeeds, the
// process exits, or p.readyTimeout has passed since t0. p.mu is held.
func (p *Process) waitReady(t0 time.Time) error {
	deadline := t0.Add(p.readyTimeout)
	pause := 5 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := p.ready(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if exited(p.cmd.Process.Pid) {
			tail := logTail(p.LogPath)
			err = fmt.Errorf("enginetest: %s (%s) exited before it answered on %s (last check: %v); end of %s:\n%s",
				p.Name, p.path, p.Addr, err, p.LogPath, tail)
			if strings.Contains(strings.ToLower(tail), "already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("enginetest: %s did not answer on %s within %v (last check: %v); end of %s:\n%s",
				p.Name, p.Addr, p.readyTimeout, err, p.LogPath, logTail(p.LogPath))
		}
		time.Sleep(pause)
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// stop sends SIGTERM and waits; crashed reports a process that had already
// exited on its own (for example killed by the OOM killer) with its status.
func (p *Process) stop() (crashed error, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := p.cmd
	if cmd == nil {
		return nil, nil
	}
	p.cmd = nil
	pid := cmd.Process.Pid
	if exited(pid) {
		p.frozen = false
		werr := cmd.Wait()
		return fmt.Errorf("enginetest: %s on %s had exited on its own (%v); see %s", p.Name, p.Addr, werr, p.LogPath), nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	// A frozen process gets SIGTERM only once it runs again.
	if err := p.thawLocked(pid); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // exit status after SIGTERM carries no information
		close(done)
	}()
	select {
	case <-done:
		return nil, nil
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-done
		return nil, fmt.Errorf("enginetest: %s on %s still ran %v after SIGTERM and was killed; see %s",
			p.Name, p.Addr, stopTimeout, p.LogPath)
	}
}

// kill sends SIGKILL to the process group and reaps the process.
func (p *Process) kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := p.cmd
	if cmd == nil {
		return nil
	}
	p.cmd = nil
	p.frozen = false // SIGKILL ends a stopped process too
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("enginetest: killing %s: %w", p.Name, err)
	}
	_ = cmd.Wait()
	return nil
}

// logTail returns the last lines of the log at path, indented, for errors.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "    (no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 25 {
		lines = lines[len(lines)-25:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// Stopped reports whether every thread of process pid is stopped by a
// signal (SIGSTOP), for tests of a process that stops itself. Without
// /proc (not Linux) it cannot tell and reports true.
func Stopped(pid int) bool { return stopped(pid) }
