//go:build failpoint && !linux

package worker

import (
	"os"
	"syscall"
)

// raise sends sig to this process; without tgkill the calling goroutine
// may go on for a moment before the signal takes effect.
func raise(sig syscall.Signal) { _ = syscall.Kill(os.Getpid(), sig) }
