package worker

// FailpointEnv names the environment variable that arms a fault for
// tests: "crash-before-ack:N" makes the worker SIGKILL itself after nsqd
// accepted its N-th chunk and before acking it, the one moment where a
// crash must lead to a redelivery under the same push ids.
//
// The hook is compiled only into binaries built with -tags failpoint (the
// tests build the worker so, and make test runs with the tag); any other
// build ignores the variable (failpoint_off.go).
const FailpointEnv = "COUPONPUSH_FAILPOINT"
