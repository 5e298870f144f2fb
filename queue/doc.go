// Package queue is the Redis schedule index: N queues of reminders hashed
// by user, the bounded Lua scripts that add, cancel, pop (with merging),
// ack, recover and forget them, the per-queue leases that make one worker
// own a queue at a time, and the layouts that let N change live.
//
// Invariants (each script checks everything before its first write, and
// touches only keys of one queue, which share a Redis Cluster hash tag):
//   - A user's reminders are in exactly one queue at a time: its queue under
//     the current layout, or during a move its old queue until the mover
//     takes the record (see Layout and Router).
//   - A pop takes at most MaxUsers users; a taken reminder is fixed in its
//     chunk (push id and items) until acked, and a redelivery republishes
//     the chunk unchanged.
//   - Pop, ack and recover need the queue's lease token: a holder that lost
//     its lease changes nothing.
//   - Writes are versioned: an add or cancel older than what the queue
//     holds changes nothing, and a taken reminder can be neither cancelled
//     nor added again until MySQL knows it was sent.
//   - A push that can never be published leaves the flight set only for the
//     queue's bounded dead-letter set (DeadLetter, under the lease), its
//     items still taken, until Replay puts it back in flight unchanged.
//   - Work prepared ahead of due (Prepare) is taken like popped work, in a
//     ready chunk that Begin moves to the flight set at its publish time;
//     until then Cancel and a move withdraw items from it. A queue holds
//     at most MaxReady ready chunks.
//   - Due checks use the Redis server's clock unless a test passes a time.
//
// The package imports nothing else of the project but leaf helpers that
// import nothing of it themselves: exactly couponpush/internal/redisscript
// (pipelined EVALSHA with the NOSCRIPT fallback). The import rule of
// `make check` holds it to that.
package queue
