// Command claimbench measures durable coupon claims over HTTP on one hot
// template against a row-lock baseline (see docs/bench.md). Engines
// come from the COUPONPUSH_* environment; `make bench-claims` does all of it.
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
	var c bench.ClaimConfig
	flag.IntVar(&c.Clients, "clients", 64, "concurrent HTTP clients (and baseline connections)")
	flag.DurationVar(&c.For, "for", 10*time.Second, "how long each load runs")
	flag.Int64Var(&c.Stock, "stock", 100_000_000, "the hot template's stock")
	flag.IntVar(&c.SubStocks, "substocks", 8, "the hot template's sub-stock count")
	flag.IntVar(&c.Workers, "workers", 1, "workers run in this process")
	flag.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the HTTP claim load to this file")
	flag.BoolVar(&c.AuthOff, "auth-off", false, "run the workers with auth off (default: real operator and user tokens)")
	flag.Parse()
	c.RedisAddr, c.MySQLDSN, c.ConsulAddr = os.Getenv("COUPONPUSH_REDIS_ADDR"), os.Getenv("COUPONPUSH_MYSQL_DSN"), os.Getenv("COUPONPUSH_CONSUL_ADDR")
	if c.RedisAddr == "" || c.MySQLDSN == "" || c.ConsulAddr == "" {
		fmt.Fprintln(os.Stderr, "claimbench: set COUPONPUSH_REDIS_ADDR, _MYSQL_DSN, _CONSUL_ADDR (make bench-claims does)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := bench.RunClaims(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "claimbench:", err)
		os.Exit(1)
	}
}
