// Command worker runs couponpush's roles (api, scheduler, cron, coupon):
// any number of workers run side by side. See README.md for flags and
// environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"couponpush/config"
	"couponpush/worker"
)

func main() {
	cfg, err := config.LoadWorker(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Print(config.WorkerUsage())
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	log := cfg.NewLogger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := worker.Run(ctx, cfg, log); err != nil {
		log.Error("worker failed", "err", err)
		os.Exit(1)
	}
}
