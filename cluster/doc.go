// Package cluster is everything couponpush asks of Consul, behind a narrow
// API: the queue count N in KV (read, check-and-set write, and a watcher
// that follows it), the worker's service registration with a TTL health
// check, the list of live workers, a session lock for the one
// coordinator, and LockedJob: a periodic job that runs only while it holds
// its lock, so one worker of the cluster runs it at a time.
//
// # Keys
//
// Every KV key lives under a configurable prefix (default "couponpush"), so
// several deployments or test runs share one Consul:
//
//	<prefix>/queues/count   the queue count N, a decimal integer 1-65536
//	<prefix>/locks/<name>   session locks taken with Client.Lock
//
// # Failure behaviour
//
// Consul is a control plane, not the data path: when it is unreachable the
// watcher keeps the last good N and the registration keeps trying, each
// logging once per outage and retrying with capped backoff. A bad value
// written to the queue-count key (0, negative, not a number) is logged and
// ignored; the last good N stays in force. An absent key means the
// configured default.
//
// Every long-running part (QueueCountWatcher, Registration, LockedJob) has
// Start(ctx) and an idempotent Stop, and its goroutines end on Stop (the
// watcher's and the registration's also when ctx ends).
package cluster
