// Package httpapi is couponpush's HTTP layer: JSON over net/http with Go
// 1.22 ServeMux patterns, per CONTRACT.md (docs/api.md describes it in full).
//
// Rules every route keeps:
//   - Every error is {"error": {"code": "snake_case", "message": "..."}}
//     with a 4xx/5xx status; unknown routes and methods too (404 not_found,
//     405 method_not_allowed).
//   - Input is checked completely (path ids, body, fields) before any
//     service call, so bad input never leaves a partial write.
//   - Bodies are JSON objects, at most Config.MaxBodyBytes, with no unknown
//     fields and nothing after the object.
//   - Times go out as RFC 3339 in UTC with exactly three fractional digits
//     ("2026-11-23T10:00:00.000Z") and come in as any RFC 3339 time.
//   - A 500 says "internal error" and nothing more; the cause is logged.
//     A failing engine (MySQL, Redis) answers 503 unavailable.
package httpapi
