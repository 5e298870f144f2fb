// Package scheduler turns due reminders into pushes.
//
// A Scheduler runs Slots loops. Each loop asks the queue index which queues
// have work (by the Redis clock), lets the balancer pick one and take its
// lease (when several are due: first one whose work has waited past twice
// the priority ageing, then one with high-priority work), and drains it: first
// the flights a previous holder left behind (republished unchanged, same
// push_id), then the prepared chunks whose time has come and bounded pops
// of due users, each chunk published to NSQ and acked only after nsqd
// accepted it. A draining slot whose queue has no high work left takes
// the lease of another queue with high work due, when it can, and goes
// on there. A loop with nothing to do waits a tick, or until
// the next index's earliest time when that comes sooner.
// Acked pushes go to a marker that tells MySQL, in batched UPDATEs, which
// reminders were sent, and then drops them from Redis.
//
// Invariants kept here (DESIGN.md): a push is acked only after nsqd accepted
// it (R1); a popped push is fixed, so a redelivery carries the same id (R5);
// a queue is worked only under its lease (R7).
package scheduler
