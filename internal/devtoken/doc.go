// Package devtoken makes the bearer tokens of a worker this process starts
// or configures (the benches, the demo, tests): a random operator token
// and HS256 user JWTs. Real users get their JWTs from an identity
// provider; couponpush/client only sends them.
package devtoken
