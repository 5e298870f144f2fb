// Package auth tells who is calling the HTTP API (CONTRACT.md "Who may
// call what"): a user, proven by a signed JWT, or an operator, proven by an
// opaque token. Package httpapi decides what each may call.
//
// Invariants:
//   - A token is accepted only if it verifies with a configured key under
//     an algorithm that key is for: HS256 with the shared secret, RS256
//     with RSA keys, ES256 with P-256 keys, EdDSA with Ed25519 keys. "none"
//     and any other algorithm are refused (jwt.WithValidMethods), and a key
//     is never tried under another key type's algorithm (no algorithm
//     confusion: an RSA public key is never an HMAC secret).
//   - A user token carries exp (required), and aud and iss when they are
//     configured; times are checked with Leeway of slack for clock skew.
//   - sub is the user id in canonical decimal: digits only, no sign, no
//     leading zero, a positive 64-bit integer. Anything else is refused.
//   - With a JWKS, a token naming a kid is tried only with the keys of that
//     kid (and a JWK naming an alg only under that alg).
//   - Operator tokens are compared as SHA-256 digests with
//     crypto/subtle, against every configured token without stopping at a
//     match, so neither a token's length nor which token matched shows in
//     the time taken.
//   - No error or log line carries a token, a secret or a key.
package auth
