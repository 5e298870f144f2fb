// Package console is the operators' web console of a coupon drop: an
// http.Handler the worker serves on its ops listener under /console/.
//
// What it shows comes from the engines and the workers themselves:
//   - drops (live templates): subscribers by status (MySQL), reminder items
//     due and published over time (every worker's /metrics, found through
//     Consul, scraped and summed each second into a bounded ring buffer),
//     lateness p50/p99 (the summed histograms) and a forecast: at the
//     measured publish rate, does the pending backlog drain before the grab
//     start;
//   - queues: N (Consul), the layout and a move's progress, per queue depth,
//     lag, flights and lease holder (Redis); workers with health and roles
//     (Consul);
//   - one user's trace (package trace);
//   - coupons: stock, issued, remaining, drift and claim outcomes.
//
// # Invariants
//
//   - Every page and endpoint but the login form needs an operator: a
//     session cookie made by logging in with an operator token (HttpOnly,
//     SameSite=Strict, Secure over TLS), or an Authorization: Bearer
//     operator token. The token itself is never stored: a session keeps
//     its fingerprint (Fingerprint), which is also who the audit log names.
//   - A write (pause, resume, set N, replay dead letters) takes two POSTs:
//     prepare, which says what will happen and returns a one-time confirm
//     id, and confirm. A POST with a session cookie must carry the
//     session's CSRF token (X-CSRF-Token) and, when the browser sends one,
//     an Origin of this host.
//   - Every confirmed action is written to the audit log before it runs
//     (result "started") and settled after ("ok" or "failed"); an action
//     whose audit row cannot be written does not run.
//   - Everything is bounded: each scrape and engine read has a timeout, the
//     ring buffer has a fixed length, live templates and sessions are
//     capped. The sampler does work only while someone looks at the
//     console (and for Config.IdleAfter after), so a worker nobody watches
//     does not scrape its peers.
package console
