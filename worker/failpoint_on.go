//go:build failpoint

package worker

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// failpoint returns the hook FailpointEnv arms, nil when it is unset or
// malformed.
func failpoint(log *slog.Logger) func() {
	v, ok := os.LookupEnv(FailpointEnv)
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(v, "crash-before-ack:"))
	if !strings.HasPrefix(v, "crash-before-ack:") || err != nil || n < 1 {
		log.Error("ignoring a malformed failpoint", "env", FailpointEnv, "value", v)
		return nil
	}
	log.Warn("failpoint armed: this worker will kill itself", "after_chunks", n)
	var seen atomic.Int64
	return func() {
		if seen.Add(1) == int64(n) {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never ack
		}
	}
}
