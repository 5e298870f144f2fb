// Command consumer is the reference consumer of the coupon push topic: it
// reads batches from nsqd, drops repeated push ids, prints one line per push
// and a lateness summary when it changed (checked every second), and exits on SIGINT or SIGTERM after
// finishing the messages it holds.
//
//	consumer [-nsqd host:port] [-topic coupon_push] [-channel message_center] [-quiet] [-every 1s]
//
// -nsqd defaults to $COUPONPUSH_NSQD_TCP, then 127.0.0.1:4150; -topic to
// $COUPONPUSH_TOPIC, then coupon_push. Output lines:
//
//	<push_id> <user_id> <due_at> late=<ms>ms items=<n>
//	summary pushes=<n> duplicates=<n> malformed=<n> batches=<n> late_p50=<ms>ms late_p99=<ms>ms late_max=<ms>ms
//
// Lateness is arrival minus due_at; the percentiles have 1 ms resolution.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}
