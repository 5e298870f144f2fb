// Package worker assembles one cmd/worker process from its configuration:
// engines, the roles it runs (api, scheduler, cron, coupon), its Consul
// registration, and the order in which a SIGTERM takes it all down.
//
// A worker is a list of parts (see part.go), each with Start(ctx) and an
// idempotent Stop, started in order and stopped in reverse; partList in
// worker.go is that list and says why its order is the shutdown order:
// stop taking work, finish or hand back what is in hand, deregister from
// Consul, close the HTTP listener, close the engines, close the ops
// listener (ops.go: /healthz, /readyz, /metrics and the console's mount,
// on every worker). Deregistering before the listener closes means Consul
// never shows a worker passing whose port is already closed. Every metric
// the worker exposes is declared in metrics.go (client_golang, one
// registry per worker).
package worker
