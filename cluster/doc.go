// Package cluster is everything couponpush asks of Consul, behind a narrow
// API: the queue count N in KV (read, check-and-set write, and a watcher
// that follows it), the worker's service registration with a TTL health
// check, the list of live workers, and a session lock for the one
// coordinator.
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
// Every long-running part (QueueCountWatcher, Registration) has Start(ctx)
// and an idempotent Stop, and its goroutine ends on either.
package cluster
