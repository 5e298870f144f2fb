// Command trustbench measures what the auth and rate-limit checks cost:
// durable claims/s and PUTs/s over HTTP with them on beside off, in
// alternating rounds on the same engines (see docs/bench.md). Engines
// come from the COUPONPUSH_* environment; `make bench-trust` does all of it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"couponpush/bench"
)

func main() {
	var c bench.TrustConfig
	flag.IntVar(&c.Clients, "clients", 64, "concurrent HTTP clients")
	flag.DurationVar(&c.For, "for", 2*time.Second, "how long each round runs")
	flag.IntVar(&c.Rounds, "rounds", 10, "rounds of each mode (checked, unchecked), alternating, per load")
	flag.StringVar(&c.CPUProfile, "cpuprofile", "", "CPU-profile each timed round into PREFIX.<mode>.<unit>.<round> (compare modes with go tool pprof -diff_base)")
	flag.Parse()
	c.RedisAddr, c.MySQLDSN, c.ConsulAddr = os.Getenv("COUPONPUSH_REDIS_ADDR"), os.Getenv("COUPONPUSH_MYSQL_DSN"), os.Getenv("COUPONPUSH_CONSUL_ADDR")
	if c.RedisAddr == "" || c.MySQLDSN == "" || c.ConsulAddr == "" || c.Rounds < 1 || c.Clients < 1 || c.For <= 0 {
		fmt.Fprintln(os.Stderr, "trustbench: set COUPONPUSH_REDIS_ADDR, _MYSQL_DSN, _CONSUL_ADDR (make bench-trust does); -rounds, -clients and -for must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := bench.RunTrust(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "trustbench:", err)
		os.Exit(1)
	}
}
