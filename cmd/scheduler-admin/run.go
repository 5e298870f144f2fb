package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"couponpush/cluster"
)

// Exit codes.
const (
	exitOK    = 0 // done
	exitFail  = 1 // the command ran and failed (Consul down, conflict, bad state)
	exitUsage = 2 // bad command line
)

// Environment variables read for flag defaults; the same names the worker
// reads, so one environment serves both.
const (
	envConsulAddr   = "COUPONPUSH_CONSUL_ADDR"
	envConsulPrefix = "COUPONPUSH_CONSUL_PREFIX"
	envServiceName  = "COUPONPUSH_SERVICE_NAME"
)

// command is one CLI command as listed in the usage text.
type command struct {
	name, args, help string
	run              func(ctx context.Context, a *admin, args []string) error // nil: not built yet
}

var commands = []command{
	{"queues", "", "show the queue count N", cmdQueues},
	{"queues set", "M", "set N to M (1-65536), with check-and-set", nil}, // dispatched by cmdQueues
	{"workers", "", "list registered workers and their health", cmdWorkers},
	{"user", "ID", "show a user's reminders", nil},
	{"pause", "", "pause the schedulers", nil},
	{"resume", "", "resume the schedulers", nil},
	{"rebuild", "", "rebuild the Redis index from MySQL", nil},
}

// usageError is a bad command line; run prints it with the usage text.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// admin is what a command needs: the Consul client, its options and where
// to print.
type admin struct {
	consul  *cluster.Client
	service string
	json    bool
	out     io.Writer
}

// run parses args (without the program name), runs the command and returns
// the process exit code. Output goes to stdout, errors and usage to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scheduler-admin", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("consul", envOr(envConsulAddr, cluster.DefaultAddr), "Consul HTTP `address` (env "+envConsulAddr+")")
	prefix := fs.String("prefix", envOr(envConsulPrefix, cluster.DefaultPrefix), "Consul KV `prefix` (env "+envConsulPrefix+")")
	service := fs.String("service", envOr(envServiceName, "couponpush-worker"), "worker service `name` in Consul (env "+envServiceName+")")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on Consul after this `duration`")

	// Flags may come before or after the command words.
	var words []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, usage(fs))
				return exitOK
			}
			fmt.Fprintf(stderr, "scheduler-admin: %v\n\n%s", err, usage(fs))
			return exitUsage
		}
		if rest = fs.Args(); len(rest) == 0 {
			break
		}
		words, rest = append(words, rest[0]), rest[1:]
	}
	if len(words) == 0 {
		fmt.Fprint(stderr, usage(fs))
		return exitUsage
	}
	if words[0] == "help" {
		fmt.Fprint(stdout, usage(fs))
		return exitOK
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == words[0] })
	if i < 0 {
		fmt.Fprintf(stderr, "scheduler-admin: unknown command %q\n\n%s", words[0], usage(fs))
		return exitUsage
	}
	cmd := commands[i]
	if cmd.run == nil {
		fmt.Fprintf(stderr, "scheduler-admin: %s: not implemented yet\n", cmd.name)
		return exitFail
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "scheduler-admin: -timeout must be positive\n")
		return exitUsage
	}

	c, err := cluster.New(*addr, *prefix, nil)
	if err != nil {
		fmt.Fprintf(stderr, "scheduler-admin: %v\n", err)
		return exitUsage
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	a := &admin{consul: c, service: *service, json: *asJSON, out: stdout}
	if err := cmd.run(ctx, a, words[1:]); err != nil {
		label := cmd.name
		if label == "queues" && len(words) > 1 && words[1] == "set" {
			label = "queues set"
		}
		fmt.Fprintf(stderr, "scheduler-admin: %s: %v\n", label, err)
		if errors.As(err, new(usageError)) {
			fmt.Fprintf(stderr, "\n%s", usage(fs))
			return exitUsage
		}
		return exitFail
	}
	return exitOK
}

// envOr returns the environment variable name, or def if it is empty.
func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

// usage is the help text: commands, then flags.
func usage(fs *flag.FlagSet) string {
	var b strings.Builder
	b.WriteString("Usage: scheduler-admin [flags] <command> [args]\n\nCommands:\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, c := range commands {
		note := ""
		if c.run == nil && c.name != "queues set" {
			note = " (not implemented yet)"
		}
		fmt.Fprintf(tw, "  %s %s\t%s%s\n", c.name, c.args, c.help, note)
	}
	_ = tw.Flush()
	b.WriteString("\nFlags (before or after the command):\n")
	fs.VisitAll(func(f *flag.Flag) {
		name, help := flag.UnquoteUsage(f)
		fmt.Fprintf(tw, "  -%s %s\t%s", f.Name, name, help)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(tw, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(tw)
	})
	_ = tw.Flush()
	b.WriteString("\nExit status: 0 done, 1 failed (Consul unreachable, conflict, bad state), 2 bad usage.\n")
	return b.String()
}

// queueCount is the JSON shape of the queue count key.
type queueCount struct {
	Key         string `json:"key"`
	Found       bool   `json:"found"`
	Count       int    `json:"count,omitempty"`
	ModifyIndex uint64 `json:"modify_index,omitempty"`
	Error       string `json:"error,omitempty"`
}

// cmdQueues shows N, or with "set M" changes it.
func cmdQueues(ctx context.Context, a *admin, args []string) error {
	if len(args) > 0 && args[0] == "set" {
		return cmdQueuesSet(ctx, a, args[1:])
	}
	if len(args) > 0 {
		return usagef("unexpected argument %q (want: queues, or queues set M)", args[0])
	}
	n, idx, found, err := a.consul.QueueCount(ctx)
	bad := errors.Is(err, cluster.ErrBadQueueCount)
	if err != nil && !bad {
		return err
	}
	qc := queueCount{Key: a.consul.QueueCountKey(), Found: found, Count: n, ModifyIndex: idx}
	if bad {
		qc.Error = err.Error()
	}
	if a.json {
		if err := printJSON(a.out, qc); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tN\tMODIFY_INDEX")
		switch {
		case !found:
			fmt.Fprintf(tw, "%s\t(absent: workers use their default_queue_count)\t-\n", qc.Key)
		case bad:
			fmt.Fprintf(tw, "%s\t(bad value: workers keep their last good N)\t%d\n", qc.Key, idx)
		default:
			fmt.Fprintf(tw, "%s\t%d\t%d\n", qc.Key, n, idx)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if bad {
		return fmt.Errorf("%w; fix it with: scheduler-admin queues set M", err)
	}
	return nil
}

// cmdQueuesSet sets N to M with check-and-set against the value just read.
func cmdQueuesSet(ctx context.Context, a *admin, args []string) error {
	if len(args) != 1 {
		return usagef("queues set takes one argument, the new queue count M")
	}
	m, err := cluster.ParseQueueCount([]byte(args[0]))
	if err != nil {
		return usageError{err.Error()}
	}
	old, idx, found, err := a.consul.QueueCount(ctx)
	if err != nil && !errors.Is(err, cluster.ErrBadQueueCount) {
		return err
	}
	from := "absent"
	switch {
	case err != nil:
		from = "bad value"
	case found:
		from = strconv.Itoa(old)
	}
	changed := !(found && err == nil && old == m)
	if changed {
		ok, err := a.consul.SetQueueCount(ctx, m, idx)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("the queue count changed while this command ran; nothing written, look and try again")
		}
	}
	if a.json {
		return printJSON(a.out, map[string]any{"key": a.consul.QueueCountKey(), "from": from, "to": m, "changed": changed})
	}
	if !changed {
		_, err = fmt.Fprintf(a.out, "%s is already %d; nothing changed\n", a.consul.QueueCountKey(), m)
		return err
	}
	_, err = fmt.Fprintf(a.out, "%s: %s -> %d\n", a.consul.QueueCountKey(), from, m)
	return err
}

// workerJSON is the JSON shape of one worker.
type workerJSON struct {
	ID      string            `json:"id"`
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Status  string            `json:"status"`
	Meta    map[string]string `json:"meta"`
}

// cmdWorkers lists the registered workers.
func cmdWorkers(ctx context.Context, a *admin, args []string) error {
	if len(args) > 0 {
		return usagef("workers takes no arguments, got %q", args[0])
	}
	ws, err := a.consul.Workers(ctx, a.service)
	if err != nil {
		return err
	}
	if a.json {
		out := make([]workerJSON, 0, len(ws))
		for _, w := range ws {
			out = append(out, workerJSON(w))
		}
		return printJSON(a.out, out)
	}
	if len(ws) == 0 {
		_, err := fmt.Fprintf(a.out, "no workers registered as %q\n", a.service)
		return err
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tSTATUS\tMETA")
	for _, w := range ws {
		var meta []string
		for _, k := range slices.Sorted(maps.Keys(w.Meta)) {
			meta = append(meta, k+"="+w.Meta[k])
		}
		addr := w.Address
		if w.Port != 0 {
			addr += ":" + strconv.Itoa(w.Port)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", w.ID, addr, w.Status, strings.Join(meta, " "))
	}
	return tw.Flush()
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
