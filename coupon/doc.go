// Package coupon owns coupon templates and coupons: templates (what a drop
// offers, how many, when), claims against a hot template's stock, and
// coupons' lock, unlock, redeem and expiry, over MySQL (the truth) and
// Redis (stock, reservations, the template cache).
//
// Invariants:
//   - A Template is valid by construction: NewTemplate and the store's
//     Update are the only ways to make or change one, and both validate,
//     returning a *ValidationError that names each bad field.
//   - A template's grab_start never changes once any subscription row refers
//     to it: Update checks and writes in one transaction, with locking reads
//     on the template row and on the template's subscriptions, so no
//     subscription can be inserted between the check and the write.
//   - TemplateCache answers from memory for at most its TTL; Update through
//     the cache invalidates the entry in this process at once. Other
//     processes see a change within one TTL plus one Redis cache refresh.
//   - C1: a template's stock is split over SubStocks Redis hashes on
//     different Cluster slots; a take decrements one only while it is
//     positive and records a hold, and stock reaches Redis only through
//     stock_adds rows credited once per sub-stock, so coupons issued never
//     exceed the stock.
//   - C2: a per-user slot (1..per_user_limit) is taken in the same script
//     as the request_id's reservation, and MySQL has a unique key on
//     (template, user, slot), so the limit holds even if Redis forgets.
//   - C3: one request_id has one reservation per user, and MySQL a unique
//     key on (template, request_id); a retry gets the original coupon.
//   - C4: a claim is answered only after its row is committed (group
//     commit). A write known to have failed gives slot and stock back; an
//     unknown outcome is left to Reconcile, which acts only after
//     ReconcileDeadline, when no write of the claim can still commit.
//   - C5: lock, redeem and the expiry sweep are conditional UPDATEs on the
//     row's state and expires_at; reads report expired once expires_at has
//     passed, before the sweep.
//   - Every Redis script touches one key (see keys.go), so every script
//     runs on Redis Cluster.
package coupon
