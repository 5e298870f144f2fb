// Package client is the Go client of couponpush's HTTP API (docs/api.md,
// docs/openapi.yaml): one typed method per route, request and answer
// structs that match the JSON exactly, and the API's error object as an
// *Error.
//
// A Client talks to one API base URL with one bearer token (a user's JWT
// or an operator token, Config.Token); a call may send another with
// WithToken, so one Client serves many users. The http.Client (and so its
// connection pool) is shared by every call.
//
// Errors: an answer with an error status is an *Error carrying the status,
// the code, the message, the fields at fault and Retry-After. Branch on the
// code with errors.Is and the sentinels (errors.Is(err, client.ErrSoldOut)),
// or read it with errors.As.
//
// Retries: Claim carries the API's claim protocol. On 503 outcome_unknown,
// 409 claim_in_progress or a transport error (the claim may have been made)
// it sends the same request_id again, after the answer's Retry-After (or
// Config.RetryWait, doubling), at most Config.ClaimAttempts times in all,
// and never past the context. No other call is resent, with one opt-in
// exception: a 429 rate_limited is returned to the caller (its RetryAfter
// set) unless the call was made with WaitRateLimited (or
// Config.WaitRateLimited), in which case it is waited out and resent, at
// most Config.RateLimitAttempts times.
package client
