// Package enginetest gives integration tests the real engines couponpush runs
// on: Redis (standalone and Cluster), MariaDB, nsqd and a Consul dev agent.
//
// # Shared engines
//
// RedisAddr, Redis, RedisCluster, MySQL, NSQD and Consul hand out one engine
// of each kind per test binary. If the matching COUPONPUSH_* variable is set
// (COUPONPUSH_REDIS_ADDR, COUPONPUSH_MYSQL_DSN, COUPONPUSH_NSQD_TCP and
// COUPONPUSH_NSQD_HTTP, COUPONPUSH_CONSUL_ADDR; `make test` sets them from
// `scripts/engines.sh start`), that engine is used; otherwise the helper
// starts one, the first time a test asks, on free loopback ports with a fresh
// data directory, and every later test of the binary gets the same one.
// Tests share these engines, so they isolate themselves by name: Prefix for
// Redis keys, NSQ topics and Consul KV prefixes; MySQL creates a database per
// call. Tests must never flush or reconfigure a shared engine; a test that
// needs that starts its own.
//
// # Engines of one test
//
// StartRedis, StartMySQL, StartNSQD and StartConsul start an engine for one
// test only, stopped at t.Cleanup, for tests that stop, kill, freeze or
// restart it (outages) or need special settings. Restart brings it back on
// the same ports and data; Freeze (SIGSTOP) makes it hang with its sockets
// open, as a stuck engine does, until Thaw (SIGCONT). A shared engine is
// never frozen: other tests use it.
//
// # Lifetime
//
// Every package whose tests use this package calls Main from TestMain:
//
//	func TestMain(m *testing.M) { enginetest.Main(m) }
//
// Main stops the shared engines after the tests and removes their data, and
// fails the binary if an engine does not stop cleanly. MainNoLeaks does the
// same and then checks with goleak that no goroutine outlived the tests; it
// is the form for packages that start goroutines (goleak.VerifyTestMain
// cannot be combined with Main, and goleak.VerifyNone inside a test sees the
// goroutines of tests running in parallel). As a safety net for a
// binary that dies first, engines get SIGTERM when the test binary exits
// (Linux parent-death signal), and data directories left by dead test
// binaries are removed the next time engines are started.
//
// # Rules the helpers keep
//
//   - A missing engine binary fails the test (never skips) with the command that
//     installs it: `scripts/engines.sh install`.
//   - Readiness is polled with a deadline (an answer from the engine's own
//     protocol, never a fixed sleep); a failure names the engine and shows the
//     end of its log.
//   - Ports are picked at random below the kernel's ephemeral range and probed,
//     so parallel test binaries and outgoing connections do not collide; a start
//     that loses a port race is retried on new ports.
//   - MariaDB data is on disk, never tmpfs, with innodb_flush_log_at_trx_commit=1,
//     so a test of durability tests durability.
//   - The helpers leave no goroutine running between calls (engine processes
//     are watched through /proc, not by a waiting goroutine), so goleak sees
//     only the code under test.
package enginetest
