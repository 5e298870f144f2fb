//go:build unix && !linux

package enginetest

import "syscall"

// sysProcAttr puts an engine in its own process group, so Kill reaches what
// it forked. Without Linux's parent-death signal, engines of a test binary
// that dies before Main runs keep running.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// exited reports whether process pid has exited; without /proc a zombie
// looks alive, so a crashed engine is noticed at its readiness deadline.
func exited(pid int) bool { return !pidAlive(pid) }

// stopped cannot look at the process without /proc; SIGSTOP is delivered
// at once, so it reports true.
func stopped(int) bool { return true }

// pidAlive reports whether some process has the given pid.
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// onTmpfs is not known without statfs magic numbers; assume disk.
func onTmpfs(string) bool { return false }
