// Command scheduler-admin is the operators' CLI for a couponpush cluster.
//
//	scheduler-admin [flags] queues          N, the recorded layout and a move's progress, and per
//	                                        queue: users, due users, earliest due, lag behind the
//	                                        Redis clock, in flight, marks, in transit, lease holder
//	scheduler-admin [flags] queues set M    set N to M with check-and-set, then follow the move
//	                                        (a bar on a terminal, lines otherwise) until it is done
//	scheduler-admin [flags] workers         list workers and their health
//	scheduler-admin [flags] user ID         a user's MySQL rows joined with their queue and state in Redis
//	scheduler-admin [flags] pause | resume  stop or restart emitting, for every worker of the prefix
//	scheduler-admin [flags] rebuild         re-index every pending reminder from MySQL (DESIGN R8)
//	scheduler-admin [flags] deadletters     pushes that can never be published, per queue, with why
//	scheduler-admin [flags] deadletters replay [-queue Q] [push_id...]
//	                                        put them back for publishing, with the same push ids
//
// Flags may come before or after the command. The engines are named by
// flag or by the variables the worker reads: -consul, -prefix, -service
// (COUPONPUSH_CONSUL_ADDR, COUPONPUSH_CONSUL_PREFIX, COUPONPUSH_SERVICE_NAME),
// -redis, -redis-prefix (COUPONPUSH_REDIS_ADDR, a comma list for a Redis
// Cluster; COUPONPUSH_REDIS_PREFIX) and -mysql (COUPONPUSH_MYSQL_DSN). A
// command contacts only the engines it uses, with short dial and read
// timeouts, and -timeout bounds it as a whole; the waits of queues set and
// rebuild are bounded by -wait-timeout instead (queues set -wait=false
// returns right after the write). Output is a table, or JSON with -json.
// Exit status: 0 done, 1 failed (an engine unreachable, a concurrent
// change, a bad value in Consul, a timeout), 2 bad usage.
//
// Writing N only changes the Consul key that workers follow; moving users
// between queues is the coordinator's job, and queues set watches the
// layout it records in Redis. rebuild writes through a queue.Router, so it
// is idempotent and safe while workers run (see reindex.Rebuild).
package main
