//go:build failpoint

package worker

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// failpoints returns the hooks FailpointEnv arms (see failpoint.go); none
// when it is unset or malformed.
func failpoints(log *slog.Logger) failpointHooks {
	v, ok := os.LookupEnv(FailpointEnv)
	if !ok {
		return failpointHooks{}
	}
	name, count, _ := strings.Cut(v, ":")
	n, err := strconv.Atoi(count)
	sig, known := map[string]syscall.Signal{"crash-before-ack": syscall.SIGKILL, "stop-before-publish": syscall.SIGSTOP,
		"crash-after-prepare": syscall.SIGKILL, "clock-skew": 0}[name]
	if !known || err != nil || n < 1 {
		log.Error("ignoring a malformed failpoint", "env", FailpointEnv, "value", v)
		return failpointHooks{}
	}
	if name == "clock-skew" {
		skew := time.Duration(n) * time.Millisecond
		log.Warn("failpoint armed", "failpoint", name, "skew", skew)
		return failpointHooks{clockSkew: skew}
	}
	log.Warn("failpoint armed", "failpoint", name, "after_chunks", n)
	var seen atomic.Int64
	hook := func() {
		if seen.Add(1) != int64(n) {
			return
		}
		raise(sig)
		if sig == syscall.SIGKILL {
			select {} // never go on
		}
		// SIGSTOP: this goroutine goes on when the test sends SIGCONT.
	}
	switch name {
	case "crash-before-ack":
		return failpointHooks{beforeAck: hook}
	case "crash-after-prepare":
		return failpointHooks{afterPrepare: hook}
	}
	return failpointHooks{beforePublish: hook}
}
