package worker

// FailpointEnv names the environment variable that arms a fault for
// tests, "NAME:N", at the worker's N-th chunk:
//
//   - crash-before-ack:N makes the worker SIGKILL itself after nsqd
//     accepted the chunk and before acking it, the one moment where a
//     crash must lead to a redelivery under the same push ids;
//   - stop-before-publish:N makes it SIGSTOP itself after taking the
//     chunk and before publishing it: once a test resumes it (SIGCONT)
//     past its lease, it must not publish the chunk, which the queue's
//     next holder has republished.
//
// The hooks are compiled only into binaries built with -tags failpoint
// (the tests build the worker so, and make test runs with the tag); any
// other build ignores the variable (failpoint_off.go).
const FailpointEnv = "COUPONPUSH_FAILPOINT"

// failpointHooks are the scheduler's fault-injection points; nil hooks do
// nothing.
type failpointHooks struct {
	beforeAck, beforePublish func()
}
