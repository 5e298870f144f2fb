// Command scheduler-admin is the operators' CLI for a couponpush cluster:
// it shows and changes the queue count N in Consul (with check-and-set) and
// lists the live workers. Run it without arguments for the list of
// commands; commands still to come are listed and refuse to run.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
