package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"couponpush/cluster"
	"couponpush/config"
	"couponpush/internal/engine"
	"couponpush/queue"
)

// Exit codes.
const (
	exitOK    = 0 // done
	exitFail  = 1 // the command ran and failed (an engine down, conflict, bad state, timeout)
	exitUsage = 2 // bad command line
)

// Environment variables read for flag defaults; the same names the worker
// reads, so one environment serves both.
const (
	envConsulAddr   = "COUPONPUSH_CONSUL_ADDR"
	envConsulPrefix = "COUPONPUSH_CONSUL_PREFIX"
	envServiceName  = "COUPONPUSH_SERVICE_NAME"
	envRedisAddr    = "COUPONPUSH_REDIS_ADDR"
	envRedisPrefix  = "COUPONPUSH_REDIS_PREFIX"
	envMySQLDSN     = "COUPONPUSH_MYSQL_DSN"
)

// Engine time limits: short, so a down engine fails fast.
const (
	dialTimeout  = 2 * time.Second
	ioTimeout    = 5 * time.Second  // one Redis reply
	mysqlTimeout = 30 * time.Second // one MySQL read or write
)

// command is one CLI command as listed in the usage text. run validates
// its arguments before it asks for an engine, so a bad command line never
// waits for one.
type command struct {
	name, args, help string
	// long commands bound their waits themselves (-wait-timeout); the
	// others run under -timeout as a whole.
	long bool
	run  func(ctx context.Context, a *admin, args []string) error
}

var commands = []command{
	{"queues", "", "show N, the recorded layout and a move's progress, and per queue: users, due, earliest due, lag, in flight, lease holder (Consul, Redis)", false, cmdQueues},
	{"queues set", "M", "set N to M (1-65536) with check-and-set, then follow the move until it is done (Consul; Redis unless -wait=false)", true, cmdQueuesSet},
	{"workers", "", "list registered workers and their health (Consul)", false, cmdWorkers},
	{"user", "ID", "show a user's reminders: MySQL rows joined with their queue and state in Redis (MySQL, Redis)", false, cmdUser},
	{"pause", "", "stop every worker emitting pushes; nothing is lost (Redis)", false, cmdPause},
	{"resume", "", "resume emitting; the backlog goes out oldest first (Redis)", false, cmdResume},
	{"deadletters", "", "list pushes that can never be published, per queue: push id, user, templates, when, reason (Redis; Consul while no layout is recorded)", false, cmdDeadletters},
	{"deadletters replay", "[push_id...]", "put dead-lettered pushes back for publishing with the same push ids: the named ones, or all of -queue or of every queue (Redis)", false, cmdDeadlettersReplay},
	{"rebuild", "", "re-index every pending reminder from MySQL into Redis; idempotent, safe while workers run (MySQL, Redis)", true, cmdRebuild},
}

// lookup finds the command that words name, and its arguments.
func lookup(words []string) (command, []string, bool) {
	name, args := words[0], words[1:]
	if name == "queues" && len(args) > 0 && args[0] == "set" {
		name, args = "queues set", args[1:]
	}
	if name == "deadletters" && len(args) > 0 && args[0] == "replay" {
		name, args = "deadletters replay", args[1:]
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		return command{}, nil, false
	}
	return commands[i], args, true
}

// usageError is a bad command line; run prints it with the usage text.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// options are the parsed flags.
type options struct {
	consulAddr, consulPrefix, service string
	redisAddrs, redisPrefix, mysqlDSN string
	json                              bool
	timeout, waitTimeout              time.Duration
	wait                              bool
	queues, batch                     int
	engines                           config.Engines // credentials and TLS
	queue                             int            // deadletters: -queue, or -1 for every queue
}

// admin is what a command needs: its options, where to print, and the
// engines, each connected on first use.
type admin struct {
	opt    options
	out    io.Writer
	errOut io.Writer
	tty    bool // out is a terminal: progress bars instead of lines

	consul *cluster.Client
	rdb    redis.UniversalClient
	queue  *queue.Client
	db     *sql.DB
}

// run parses args (without the program name), runs the command and returns
// the process exit code. Output goes to stdout, errors and usage to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scheduler-admin", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o options
	fs.StringVar(&o.consulAddr, "consul", envOr(envConsulAddr, cluster.DefaultAddr), "Consul HTTP `address` (env "+envConsulAddr+")")
	fs.StringVar(&o.consulPrefix, "prefix", envOr(envConsulPrefix, cluster.DefaultPrefix), "Consul KV `prefix` (env "+envConsulPrefix+")")
	fs.StringVar(&o.service, "service", envOr(envServiceName, "couponpush-worker"), "worker service `name` in Consul (env "+envServiceName+")")
	fs.StringVar(&o.redisAddrs, "redis", envOr(envRedisAddr, ""), "Redis `address`, or comma-separated Redis Cluster seeds (env "+envRedisAddr+")")
	fs.StringVar(&o.redisPrefix, "redis-prefix", envOr(envRedisPrefix, "couponpush"), "Redis key `prefix` (env "+envRedisPrefix+")")
	// No default shown for the DSN: it may hold a password.
	fs.StringVar(&o.mysqlDSN, "mysql", "", "go-sql-driver/mysql `DSN` including the database (env "+envMySQLDSN+")")
	fs.BoolVar(&o.json, "json", false, "print JSON instead of a table")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "give up on the engines after this `duration` (the whole command, but for the waits of queues set and rebuild)")
	fs.BoolVar(&o.wait, "wait", true, "queues set: follow the move until it is done")
	fs.DurationVar(&o.waitTimeout, "wait-timeout", 10*time.Minute, "give up waiting for a move (queues set) or on a rebuild after this `duration`")
	fs.IntVar(&o.queues, "queues", 0, "queue `count` to use while no layout is recorded in Redis (default: N from Consul)")
	fs.IntVar(&o.batch, "batch", 1000, "rebuild: MySQL rows per batch (1-10000)")
	// The worker's credential and TLS flags, for the engines used here.
	loadEngines := config.EngineFlags(fs, nil, config.EngineRedis, config.EngineMySQL, config.EngineConsul)
	fs.IntVar(&o.queue, "queue", -1, "deadletters: only this queue `index` (default: every queue)")

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
	mysqlSet := false
	fs.Visit(func(f *flag.Flag) { mysqlSet = mysqlSet || f.Name == "mysql" })
	if !mysqlSet {
		o.mysqlDSN = envOr(envMySQLDSN, "")
	}
	cmd, cmdArgs, ok := lookup(words)
	if !ok {
		fmt.Fprintf(stderr, "scheduler-admin: unknown command %q\n\n%s", words[0], usage(fs))
		return exitUsage
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(stderr, "scheduler-admin: %v\n\n%s", err, usage(fs))
		return exitUsage
	}
	var err error
	if o.engines, err = loadEngines(); err != nil {
		fmt.Fprintf(stderr, "scheduler-admin: %v\n", err)
		return exitUsage
	}

	a := &admin{opt: o, out: stdout, errOut: stderr, tty: isTerminal(stdout)}
	defer a.close()
	if !cmd.long {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	if err := cmd.run(ctx, a, cmdArgs); err != nil {
		fmt.Fprintf(stderr, "scheduler-admin: %s: %v\n", cmd.name, err)
		if errors.As(err, new(usageError)) {
			fmt.Fprintf(stderr, "\n%s", usage(fs))
			return exitUsage
		}
		return exitFail
	}
	return exitOK
}

func init() {
	// The CLI reports every engine error itself, once; go-redis would also
	// log each failed dial to stderr.
	redis.SetLogger(quiet{})
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// check validates flag values that every command shares.
func (o options) check() error {
	switch {
	case o.timeout <= 0:
		return errors.New("-timeout must be positive")
	case o.waitTimeout <= 0:
		return errors.New("-wait-timeout must be positive")
	case o.queues < 0 || o.queues > cluster.MaxQueueCount:
		return fmt.Errorf("-queues must be 1-%d (0: N from Consul)", cluster.MaxQueueCount)
	case o.queue < -1 || o.queue >= cluster.MaxQueueCount:
		return fmt.Errorf("-queue must be 0-%d", cluster.MaxQueueCount-1)
	case o.batch < 1 || o.batch > 10000:
		return errors.New("-batch must be 1-10000")
	case strings.ContainsAny(o.redisPrefix, "{}") || o.redisPrefix == "":
		return errors.New("-redis-prefix must be non-empty and may not contain braces")
	}
	return nil
}

// envOr returns the environment variable name, or def if it is empty.
func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// usage is the help text: commands, then flags.
func usage(fs *flag.FlagSet) string {
	var b strings.Builder
	b.WriteString("Usage: scheduler-admin [flags] <command> [args]\n\nCommands (engines they use):\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.help)
	}
	_ = tw.Flush()
	b.WriteString("\nFlags (before or after the command):\n")
	fs.VisitAll(func(f *flag.Flag) {
		name, help := flag.UnquoteUsage(f)
		fmt.Fprintf(tw, "  -%s %s\t%s", f.Name, name, help)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(tw, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(tw)
	})
	_ = tw.Flush()
	b.WriteString("\nOnly the engines a command uses are contacted. A -redis with several addresses is a Redis Cluster.\n")
	b.WriteString("Exit status: 0 done, 1 failed (an engine unreachable, a conflict, a bad state, a timeout), 2 bad usage.\n")
	return b.String()
}

// needConsul returns the Consul client (New does not contact Consul; the
// first call does, under the command's context).
func (a *admin) needConsul() (*cluster.Client, error) {
	if a.consul != nil {
		return a.consul, nil
	}
	c, err := cluster.New(cluster.Config{Addr: a.opt.consulAddr, Prefix: a.opt.consulPrefix, Auth: engine.ConsulAuth(a.opt.engines)})
	if err != nil {
		return nil, usageError{err.Error()}
	}
	a.consul = c
	return c, nil
}

// needRedis connects to Redis and pings it, within -timeout.
func (a *admin) needRedis(ctx context.Context) (*queue.Client, error) {
	if a.queue != nil {
		return a.queue, nil
	}
	var addrs []string
	for s := range strings.SplitSeq(a.opt.redisAddrs, ",") {
		if s = strings.TrimSpace(s); s != "" {
			addrs = append(addrs, s)
		}
	}
	if len(addrs) == 0 {
		return nil, usagef("no Redis address: set -redis or %s", envRedisAddr)
	}
	opts, err := engine.RedisOptions(addrs, a.opt.engines)
	if err != nil {
		return nil, err
	}
	opts.DialTimeout = dialTimeout
	opts.ReadTimeout = ioTimeout
	opts.WriteTimeout = ioTimeout
	opts.PoolTimeout = ioTimeout
	opts.MaxRetries = 1
	opts.DialerRetries = 1 // a refused dial fails at once, not after five tries
	opts.PoolSize = 32
	opts.DisableIdentity = true
	a.rdb = redis.NewUniversalClient(opts)
	pctx, cancel := context.WithTimeout(ctx, min(a.opt.timeout, 2*dialTimeout))
	defer cancel()
	if err := a.rdb.Ping(pctx).Err(); err != nil {
		return nil, fmt.Errorf("redis %s unreachable: %w", strings.Join(addrs, ","), err)
	}
	qcl, err := queue.New(a.rdb, queue.Options{Prefix: a.opt.redisPrefix})
	if err != nil {
		return nil, err
	}
	a.queue = qcl
	return a.queue, nil
}

// needMySQL opens the database and pings it, within -timeout.
func (a *admin) needMySQL(ctx context.Context) (*sql.DB, error) {
	if a.db != nil {
		return a.db, nil
	}
	if a.opt.mysqlDSN == "" {
		return nil, usagef("no MySQL DSN: set -mysql or %s", envMySQLDSN)
	}
	dsn, err := engine.MySQLDSN(a.opt.mysqlDSN, a.opt.engines)
	if err != nil {
		return nil, usagef("bad -mysql DSN: %v", err)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, usagef("bad -mysql DSN: %v", err)
	}
	if cfg.DBName == "" {
		return nil, usagef("the -mysql DSN names no database (want user:pass@tcp(host:port)/couponpush)")
	}
	cfg.ParseTime, cfg.Loc = true, time.UTC
	if cfg.Timeout == 0 || cfg.Timeout > dialTimeout {
		cfg.Timeout = dialTimeout
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = mysqlTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = mysqlTimeout
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, usagef("bad -mysql DSN: %v", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	pctx, cancel := context.WithTimeout(ctx, min(a.opt.timeout, 2*dialTimeout))
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("mysql %s unreachable: %w", cfg.Addr, err)
	}
	a.db = db
	return db, nil
}

// fallbackCount is the queue count to use while no layout is recorded in
// Redis: -queues, or N from Consul.
func (a *admin) fallbackCount(ctx context.Context) (int, error) {
	if a.opt.queues > 0 {
		return a.opt.queues, nil
	}
	c, err := a.needConsul()
	if err != nil {
		return 0, err
	}
	n, _, found, err := c.QueueCount(ctx)
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("no layout is recorded in Redis and %s is absent in Consul: pass -queues N (the workers' default_queue_count)", c.QueueCountKey())
	}
	return n, nil
}

// close releases every engine that was opened.
func (a *admin) close() {
	if a.consul != nil {
		a.consul.Close()
	}
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
	if a.db != nil {
		_ = a.db.Close()
	}
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// stamp formats t as the contract's times: RFC 3339 with milliseconds, UTC.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }
