// Package worker assembles one cmd/worker process from its configuration:
// engines, the roles it runs (api, scheduler, cron), its Consul registration,
// and the order in which a SIGTERM takes it all down (stop taking work,
// finish or hand back what is in hand, deregister, close engines).
package worker
