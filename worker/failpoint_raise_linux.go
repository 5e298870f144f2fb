//go:build failpoint && linux

package worker

import (
	"os"
	"runtime"
	"syscall"
)

// raise sends sig to this process from the calling thread to itself, so
// that the calling goroutine stops (or dies) before it runs on: a signal
// sent to the process as a whole is taken by whichever thread the kernel
// picks, and the caller may go on for a moment meanwhile (long enough to
// publish the chunk a stop-before-publish must hold back).
func raise(sig syscall.Signal) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_ = syscall.Tgkill(os.Getpid(), syscall.Gettid(), sig)
}
