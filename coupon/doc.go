// Package coupon owns coupons: claims against a hot template's stock, the
// stock itself in Redis (sub-stocks credited from stock_adds rows), and
// coupons' lock, unlock, redeem and expiry, over MySQL (the truth) and
// Redis (stock, reservations). Templates, their validation, store and
// cache tiers are the template package's. Invalid input (ids, request_id,
// order_id, status) returns a *template.ValidationError, the one
// field-error type the HTTP layer answers with a 400.
//
// Invariants:
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
