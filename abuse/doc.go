// Package abuse keeps callers from hammering the write paths: cluster-wide
// rate limits on claims and subscription writes, per user and per client
// IP, and blocks ("the dark room") that operators place or that a caller
// earns by itself by tripping a limit again and again.
//
// Everything lives in Redis, so every worker sees the same counters and
// blocks; keys.go lists the keys. Invariants:
//   - Admit runs before any write of the request it guards: a refused
//     request (ErrLimited, ErrBlocked) has written nothing but the
//     limiter's own counters.
//   - Every counter and every block is one key on one Redis Cluster slot
//     (a hash tag), and every operation on it is one command or one Lua
//     script on that key; nothing here needs two slots at once.
//   - A block is in effect exactly while its key exists (Redis expires it);
//     the blocks index only finds blocks for List. A block write adds to
//     the index first and writes the block key second, and the index only
//     ever moves an entry's end later (ZADD GT), so the index holds every
//     block in effect. If the second write fails, the index holds an entry
//     without a block; List skips those, and the index drops them when
//     their end passes. The index is thus bounded by the blocks placed
//     within the longest block time (MaxBlock).
//   - Rate limits are GCRA (limitScript, in github.com/go-redis/redis_rate's
//     state format): Rate requests a second sustained, Burst at once. The
//     blocks and both limits are checked in one pipelined round trip (a
//     second for a limit whose first token, below, found a state there),
//     shared with the checks of concurrent requests (check.go), so
//     every request the API receives takes from its user's and its IP's
//     limits, also one refused by a block or by the other limit: what a
//     caller sends counts, whatever is answered. (Not one whose context
//     ends while it waits for its IP's leased tokens: it is answered with
//     an error, before anything is asked.) Refusals are reported in
//     order: a block, then the user's limit, then the IP's.
//   - A busy subject's limit may be leased (lease.go, Config.Lease): a
//     Guard takes several tokens in one script call and admits the next
//     requests from them locally until the lease ends, losing the rest;
//     such a limit leaves Rate × Lease of its burst unused, so that what
//     all Guards admit never exceeds the limit. A Guard's other requests
//     of the subject wait for its ask on the wire. Blocks are still looked
//     up in Redis on every request.
//   - A subject without a limit state (its full burst) takes its first
//     token of a limit that is not leased, of at most maxFirstRate a
//     second, by a plain SET NX of a mark in the blocks' round trip
//     (first.go), not by the script; the script reads the mark as that
//     token. It too never lets more through than the limit.
//   - Automatic blocks never replace a block in effect (an operator's
//     longer one stands).
package abuse
