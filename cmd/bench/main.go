// Command bench measures the reminder cluster on real engines (see
// docs/bench.md). Engines come from the COUPONPUSH_* environment that
// scripts/engines.sh start writes; `make bench` does all of it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"couponpush/bench"
)

func main() {
	var c bench.Config
	bursts := flag.String("burst", "200000", "comma-separated sizes of bursts due at one millisecond, measured in turn (0 or \"\" skips)")
	modes := flag.String("modes", "ahead", "comma-separated ways the workers work: ahead (prepare before due), due (all at due); each on its own workers")
	flag.DurationVar(&c.PrepareAhead, "prepare-ahead", 0, "how long before due mode ahead prepares (0: the worker's default)")
	flag.IntVar(&c.Spread, "spread", 20_000, "reminders spread over -spread-over (0 skips)")
	flag.DurationVar(&c.SpreadOver, "spread-over", 20*time.Second, "time the spread reminders fall due over")
	flag.DurationVar(&c.SubscribeFor, "subscribe-for", 10*time.Second, "how long the subscribe load runs (0 skips)")
	flag.IntVar(&c.Clients, "clients", 64, "concurrent HTTP clients")
	flag.IntVar(&c.Workers, "workers", 2, "workers run in this process")
	flag.IntVar(&c.Slots, "slots", 0, "queues each worker works at once (0: the worker's default)")
	flag.IntVar(&c.PopBatch, "pop-batch", 0, "users per pop (0: the worker's default)")
	flag.IntVar(&c.SeedRate, "seed-rate", bench.DefaultSeedRate, "reminders seeded per second that a burst's due time leaves room for (lower it on a slow machine)")
	flag.BoolVar(&c.SkipRaw, "skip-raw", false, "skip the bare pop+MPUB floor")
	flag.IntVar(&c.Priority, "priority", 0, "high and as many low reminders due at one millisecond on one worker with one slot (0 skips)")
	flag.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the burst's drain to this file")
	flag.BoolVar(&c.AuthOff, "auth-off", false, "run the workers with auth off (default: real operator and user tokens)")
	logLevel := flag.String("log-level", "warn", "the workers' log lines at this level and above go to stderr (debug, info, warn, error)")
	flag.Parse()
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "bench: -log-level: %v\n", err)
		os.Exit(2)
	}
	c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	for _, b := range strings.Split(*bursts, ",") {
		if b = strings.TrimSpace(b); b == "" {
			continue
		}
		n, err := strconv.Atoi(b)
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "bench: -burst: %q is not a count\n", b)
			os.Exit(2)
		}
		if n > 0 { // 0 skips, as it always did
			c.Bursts = append(c.Bursts, n)
		}
	}
	for _, m := range strings.Split(*modes, ",") {
		if m = strings.TrimSpace(m); m != "" {
			c.Modes = append(c.Modes, m)
		}
	}
	c.RedisAddr, c.MySQLDSN = os.Getenv("COUPONPUSH_REDIS_ADDR"), os.Getenv("COUPONPUSH_MYSQL_DSN")
	c.NSQDAddr, c.ConsulAddr = os.Getenv("COUPONPUSH_NSQD_TCP"), os.Getenv("COUPONPUSH_CONSUL_ADDR")
	if c.RedisAddr == "" || c.NSQDAddr == "" || c.ConsulAddr == "" {
		fmt.Fprintln(os.Stderr, "bench: set COUPONPUSH_REDIS_ADDR, _MYSQL_DSN, _NSQD_TCP, _CONSUL_ADDR (make bench does)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := bench.Run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
