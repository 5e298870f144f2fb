package worker

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// FailpointEnv names the environment variable that arms a fault for
// tests: "crash-before-ack:N" makes the worker SIGKILL itself after nsqd
// accepted its N-th chunk and before acking it, the one moment where a
// crash must lead to a redelivery under the same push ids. Unset (as in
// production) it does nothing.
const FailpointEnv = "COUPONPUSH_FAILPOINT"

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
