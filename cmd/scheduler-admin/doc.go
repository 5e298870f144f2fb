// Command scheduler-admin is the operators' CLI for a couponpush cluster.
//
//	scheduler-admin [flags] queues          show the queue count N
//	scheduler-admin [flags] queues set M    set N to M with check-and-set
//	scheduler-admin [flags] workers         list workers and their health
//
// Planned and listed in the usage, but refusing to run for now: user ID,
// pause, resume, rebuild. Flags (-consul, -prefix, -service, -json,
// -timeout) may come before or after the command; -consul, -prefix and
// -service default to COUPONPUSH_CONSUL_ADDR, COUPONPUSH_CONSUL_PREFIX and
// COUPONPUSH_SERVICE_NAME, the variables the worker reads. Output is a table,
// or JSON with -json. Exit status: 0 done, 1 failed (Consul unreachable, a
// concurrent change, a bad value in Consul, a command not built yet),
// 2 bad usage.
//
// Writing N only changes the Consul key that workers follow; moving users
// between queues is the coordinator's job (see DESIGN.md).
package main
