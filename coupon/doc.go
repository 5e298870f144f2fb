// Package coupon owns coupon templates: what a drop offers, how many, and
// when it can be grabbed. (Claims, stock, redeem and expiry join it later.)
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
//     processes see a change within one TTL.
package coupon
