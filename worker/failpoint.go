package worker

import "time"

// FailpointEnv names the environment variable that arms a fault for
// tests, "NAME:N":
//
//   - crash-before-ack:N makes the worker SIGKILL itself at its N-th
//     chunk, after nsqd accepted the chunk and before acking it, the one
//     moment where a crash must lead to a redelivery under the same push
//     ids;
//   - stop-before-publish:N makes it SIGSTOP itself at its N-th chunk,
//     after taking the chunk and before publishing it: once a test
//     resumes it (SIGCONT) past its lease, it must not publish the chunk,
//     which the queue's next holder has republished;
//   - crash-after-prepare:N makes it SIGKILL itself right after it took
//     its N-th chunk ahead of due (and sealed it), still holding the
//     queue's lease: the next holder must publish the ready chunks it
//     left, unchanged, at their time;
//   - clock-skew:N makes its scheduler's view of the Redis clock run N ms
//     ahead (scheduler.Config.ClockSkew), as a worker whose clock jumped
//     since its last sync would: nothing may go out early for it.
//
// The hooks are compiled only into binaries built with -tags failpoint
// (the tests build the worker so, and make test runs with the tag); any
// other build ignores the variable (failpoint_off.go).
const FailpointEnv = "COUPONPUSH_FAILPOINT"

// failpointHooks are the scheduler's fault-injection points; nil hooks and
// a zero skew do nothing.
type failpointHooks struct {
	beforeAck, beforePublish, afterPrepare func()
	clockSkew                              time.Duration
}
