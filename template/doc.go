// Package template owns coupon templates: what a drop offers, how many and
// when. It validates them (New, Patch), keeps them in MySQL (Store, table
// templates, see migrate/) and serves reads through three tiers: process
// memory (Cache), then Redis (Redis, key <p>:tpl:<id>, see keys.go), then
// MySQL. Redis.Refresh is the refresh job the coupon role runs every
// template_refresh_every under a Consul lock; it is the only writer of the
// Redis tier. Claims, stock in Redis and the coupon lifecycle are the
// coupon package's.
//
// Invariants:
//   - A Template is valid by construction: New and Store.Update are the
//     only ways to make or change one, and both validate, returning a
//     *ValidationError that names each bad field.
//   - A template's grab_start never changes once any subscription row refers
//     to it: Store.Update checks and writes in one transaction, with locking
//     reads on the template row and on the template's subscriptions, so no
//     subscription can be inserted between the check and the write
//     (ErrHasSubscribers). FinalStarts is the one place that relies on this
//     rule: a grab start it holds is kept without a TTL (at most
//     MaxFinalStarts templates); the subscription service and the worker's
//     scheduler each keep one.
//   - A Template's Priority is always one of high, normal, low: a draft
//     without one is normal, as is a Redis entry written before the field
//     existed; a Redis entry with an unknown priority is not used. Priority
//     may change at any time (it moves no push time). It is stored and
//     answered; the scheduler does not use it yet.
//   - Cache staleness is bounded: Cache answers from memory for at most its
//     TTL (DefaultCacheTTL, 2 s); Update through the cache invalidates the
//     entry in this process at once. Update and AddStock through Redis drop
//     the Redis entry, so the next reads go to MySQL. Other processes see a
//     change within one Cache TTL plus one Refresh period.
//   - Stock is a column of the template row: Create and Store.AddStock write
//     the stock_adds row that records it in the same transaction as the
//     row, so the coupon package can credit each addition to Redis once.
package template
