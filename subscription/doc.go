// Package subscription is the reminder subscription service: users
// subscribe to a coupon template's reminder, which is pushed lead before the
// template's grab_start.
//
// MySQL (table subscriptions, one row per user and template) is the source
// of truth; the Redis schedule index (Index, implemented in queue/) is
// written after MySQL. Every row carries a version, bumped by every change,
// and every index write carries the row's version, so the index can ignore
// a stale write when a PUT and a DELETE race.
//
// Invariants the service keeps:
//   - One row per (user, template), whatever the concurrency: the new
//     subscription is one INSERT ... ON DUPLICATE KEY UPDATE that changes
//     nothing on a duplicate.
//   - Subscribe always (re)indexes a pending row, so a retry repairs a failed
//     first index write (R1).
//   - Cancel writes the cancel to the index first and touches MySQL only if
//     the index accepted it; a reminder already taken from its queue
//     answers ErrAlreadySent and stays pending (R2).
//   - Rows change only by compare-and-set on their version; a concurrent
//     change makes the loser re-read and retry, a bounded number of times.
//   - A subscription is inserted only while the template's grab_start in
//     MySQL equals the one push_at was computed from (a locking read inside
//     the INSERT), so a grab_start moved concurrently (template.Store)
//     cannot leave a reminder at the old time. Once a row is committed the
//     template's grab_start is final (template.FinalStarts): later inserts
//     for it skip the check.
//
// The *sql.DB must use parseTime=true&loc=UTC, and must not set
// clientFoundRows (the driver's default is off): the hot path tells an
// insert from a duplicate by its affected-row count. Give its pool as many
// idle connections as concurrent callers (SetMaxIdleConns): the default of
// two makes a busy service open and close connections all the time.
package subscription
