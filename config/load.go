package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"couponpush/coupon"
	"couponpush/queue"
	"couponpush/subscription"
)

// EnvPrefix starts every environment variable the worker reads.
const EnvPrefix = "COUPONPUSH_"

// EnvConfig names the environment variable that gives the config file when
// no -config flag does.
const EnvConfig = EnvPrefix + "CONFIG"

// field ties one Worker field to its flag and environment variable.
type field struct {
	flag  string            // flag name, without the dash
	env   string            // environment variable
	usage string            // one line for Usage
	ptr   func(*Worker) any // *string, *Secret, *bool, *[]string, *int or *Duration
}

// fields lists every Worker field, in the order Usage shows them.
var fields = []field{
	{"roles", "ROLES", "comma-separated roles: api, scheduler, cron, coupon (empty: all)", func(w *Worker) any { return &w.Roles }},
	{"http-addr", "HTTP_ADDR", "HTTP listen address (API, /healthz, /readyz, /metrics)", func(w *Worker) any { return &w.HTTPAddr }},
	{"ops-addr", "OPS_ADDR", "ops listen address of every worker (/healthz, /readyz, /metrics, /console/)", func(w *Worker) any { return &w.OpsAddr }},
	{"redis-addr", "REDIS_ADDR", "Redis address, or comma-separated Redis Cluster seeds (required)", func(w *Worker) any { return &w.RedisAddrs }},
	{"redis-prefix", "REDIS_PREFIX", "prefix of every Redis key", func(w *Worker) any { return &w.RedisPrefix }},
	{"mysql-dsn", "MYSQL_DSN", "go-sql-driver/mysql DSN including the database (required)", func(w *Worker) any { return &w.MySQLDSN }},
	{"nsqd-tcp", "NSQD_TCP", "nsqd TCP address (required for the scheduler role)", func(w *Worker) any { return &w.NSQDAddr }},
	{"topic", "TOPIC", "NSQ topic the pushes are published to", func(w *Worker) any { return &w.Topic }},
	{"consul-addr", "CONSUL_ADDR", "Consul agent HTTP address", func(w *Worker) any { return &w.ConsulAddr }},
	{"consul-prefix", "CONSUL_PREFIX", "prefix of every Consul KV key", func(w *Worker) any { return &w.ConsulPrefix }},
	{"service-name", "SERVICE_NAME", "Consul service name to register as", func(w *Worker) any { return &w.ServiceName }},
	{"worker-id", "WORKER_ID", "unique id of this process (default <hostname>-<pid>)", func(w *Worker) any { return &w.WorkerID }},
	{"default-queue-count", "DEFAULT_QUEUE_COUNT", "queue count N while the Consul key is absent", func(w *Worker) any { return &w.DefaultQueueCount }},
	{"lead", "LEAD", "push this long before a coupon's grab start", func(w *Worker) any { return &w.Lead }},
	{"merge-window", "MERGE_WINDOW", "merge a user's items due within this window into one push", func(w *Worker) any { return &w.MergeWindow }},
	{"tick", "TICK", "scheduler tick", func(w *Worker) any { return &w.Tick }},
	{"lease", "LEASE", "queue lease time", func(w *Worker) any { return &w.Lease }},
	{"lease-renew", "LEASE_RENEW", "queue lease renewal interval (< lease)", func(w *Worker) any { return &w.LeaseRenew }},
	{"in-flight-deadline", "IN_FLIGHT_DEADLINE", "republish a popped push not acknowledged within this", func(w *Worker) any { return &w.InFlightDeadline }},
	{"mark-interval", "MARK_INTERVAL", "sent-marks go to MySQL once deliveries pause this long cluster-wide (and at least every 10s)", func(w *Worker) any { return &w.MarkInterval }},
	{"drain-timeout", "DRAIN_TIMEOUT", "how long shutdown waits for in-flight work", func(w *Worker) any { return &w.DrainTimeout }},
	{"work-ahead", "WORK_AHEAD", "on or off: prepare pushes before due", func(w *Worker) any { return &w.WorkAhead }},
	{"prepare-ahead", "PREPARE_AHEAD", "how long before due pushes are prepared", func(w *Worker) any { return &w.PrepareAhead }},
	{"priority-ageing", "PRIORITY_AGEING", "a normal push due this long before a high one goes first (a low one twice this long)", func(w *Worker) any { return &w.PriorityAgeing }},
	{"pop-batch", "POP_BATCH", fmt.Sprintf("users per pop call (max %d)", queue.MaxPopUsers), func(w *Worker) any { return &w.PopBatch }},
	{"slots", "SLOTS", "queues this process works at once", func(w *Worker) any { return &w.Slots }},
	{"mark-batch", "MARK_BATCH", fmt.Sprintf("rows per sent-mark UPDATE (max %d)", subscription.MarkSentBatch), func(w *Worker) any { return &w.MarkBatch }},
	{"coupon-reconcile-deadline", "COUPON_RECONCILE_DEADLINE", fmt.Sprintf("settle a claim still in flight after this long (> %v write budget + lock wait)", coupon.DefaultWriteBudget), func(w *Worker) any { return &w.CouponReconcileDeadline }},
	{"coupon-reconcile-every", "COUPON_RECONCILE_EVERY", "how often Redis stock is reconciled with MySQL", func(w *Worker) any { return &w.CouponReconcileEvery }},
	{"coupon-sweep-every", "COUPON_SWEEP_EVERY", "how often expired coupons are swept", func(w *Worker) any { return &w.CouponSweepEvery }},
	{"coupon-sweep-batch", "COUPON_SWEEP_BATCH", fmt.Sprintf("coupons per expiry UPDATE (max %d)", coupon.MaxSweepBatch), func(w *Worker) any { return &w.CouponSweepBatch }},
	{"template-refresh-every", "TEMPLATE_REFRESH_EVERY", "how often the Redis template cache is rewritten from MySQL", func(w *Worker) any { return &w.TemplateRefreshEvery }},
	{"rate-limits", "RATE_LIMITS", "on or off: every rate limit and automatic block", func(w *Worker) any { return &w.RateLimits }},
	{"trusted-proxies", "TRUSTED_PROXIES", "comma-separated CIDRs of proxies whose X-Forwarded-For gives the client IP", func(w *Worker) any { return &w.TrustedProxies }},
	{"limit-claim-user-rate", "LIMIT_CLAIM_USER_RATE", "claims per user a second", func(w *Worker) any { return &w.LimitClaimUserRate }},
	{"limit-claim-user-burst", "LIMIT_CLAIM_USER_BURST", "claims per user at once", func(w *Worker) any { return &w.LimitClaimUserBurst }},
	{"limit-claim-ip-rate", "LIMIT_CLAIM_IP_RATE", "claims per client IP a second", func(w *Worker) any { return &w.LimitClaimIPRate }},
	{"limit-claim-ip-burst", "LIMIT_CLAIM_IP_BURST", "claims per client IP at once", func(w *Worker) any { return &w.LimitClaimIPBurst }},
	{"limit-subscribe-user-rate", "LIMIT_SUBSCRIBE_USER_RATE", "subscription writes per user a second", func(w *Worker) any { return &w.LimitSubscribeUserRate }},
	{"limit-subscribe-user-burst", "LIMIT_SUBSCRIBE_USER_BURST", "subscription writes per user at once", func(w *Worker) any { return &w.LimitSubscribeUserBurst }},
	{"limit-subscribe-ip-rate", "LIMIT_SUBSCRIBE_IP_RATE", "subscription writes per client IP a second", func(w *Worker) any { return &w.LimitSubscribeIPRate }},
	{"limit-subscribe-ip-burst", "LIMIT_SUBSCRIBE_IP_BURST", "subscription writes per client IP at once", func(w *Worker) any { return &w.LimitSubscribeIPBurst }},
	{"auto-block-trips", "AUTO_BLOCK_TRIPS", "block a user or IP refused by a limit more than this many times in the window", func(w *Worker) any { return &w.AutoBlockTrips }},
	{"auto-block-window", "AUTO_BLOCK_WINDOW", "window in which limit trips are counted", func(w *Worker) any { return &w.AutoBlockWindow }},
	{"auto-block-for", "AUTO_BLOCK_FOR", "how long an automatic block lasts", func(w *Worker) any { return &w.AutoBlockFor }},
	{"limit-lease", "LIMIT_LEASE", "how long tokens taken ahead for a busy IP may admit its requests locally", func(w *Worker) any { return &w.LimitLease }},
	{"log-level", "LOG_LEVEL", "debug, info, warn or error", func(w *Worker) any { return &w.LogLevel }},
	{"log-format", "LOG_FORMAT", "text or json", func(w *Worker) any { return &w.LogFormat }},
	// Identity (auth.go).
	{"auth", "AUTH", "on, or off for a local run (refused unless every listener is on loopback)", func(w *Worker) any { return &w.Auth }},
	{"operator-token", "OPERATOR_TOKEN", "an operator token (secret; prefer -operator-tokens-file)", func(w *Worker) any { return &w.OperatorToken }},
	{"operator-tokens-file", "OPERATOR_TOKENS_FILE", "file of operator tokens, one a line", func(w *Worker) any { return &w.OperatorTokensFile }},
	{"jwt-hs256-secret", "JWT_HS256_SECRET", "HS256 secret of user tokens (secret; prefer -jwt-hs256-secret-file)", func(w *Worker) any { return &w.JWTHS256Secret }},
	{"jwt-hs256-secret-file", "JWT_HS256_SECRET_FILE", "file holding the HS256 secret of user tokens", func(w *Worker) any { return &w.JWTHS256SecretFile }},
	{"jwt-public-keys", "JWT_PUBLIC_KEYS", "PEM file of RS256/ES256/EdDSA public keys of user tokens", func(w *Worker) any { return &w.JWTPublicKeys }},
	{"jwt-jwks", "JWT_JWKS", "JWK Set file of public keys of user tokens", func(w *Worker) any { return &w.JWTJWKS }},
	{"jwt-audience", "JWT_AUDIENCE", "audience user tokens must name (unchecked if empty)", func(w *Worker) any { return &w.JWTAudience }},
	{"jwt-issuer", "JWT_ISSUER", "issuer user tokens must name (unchecked if empty)", func(w *Worker) any { return &w.JWTIssuer }},
}

// set parses s into f's field of w. A value that parses to the zero value
// leaves w alone: zero means "not set here", so a lower layer or the
// default applies.
func (f field) set(w *Worker, s string) error {
	switch p := f.ptr(w).(type) {
	case *string:
		if s = strings.TrimSpace(s); s != "" {
			*p = s
		}
	case *Secret:
		if s = strings.TrimSpace(s); s != "" {
			*p = Secret(s)
		}
	case *bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		if b {
			*p = b
		}
	case *[]string:
		if l := splitList(s); len(l) > 0 {
			*p = l
		}
	case *int:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("want an integer, got %q", s)
		}
		if n != 0 {
			*p = n
		}
	case *Duration:
		var d Duration
		if err := d.Set(strings.TrimSpace(s)); err != nil {
			return err
		}
		if d != 0 {
			*p = d
		}
	default:
		panic(fmt.Sprintf("config: field %s has unsupported type %T", f.flag, p))
	}
	return nil
}

// register adds f to fs as a flag that calls set: a bool flag (-redis-tls)
// needs no value.
func (f field) register(fs *flag.FlagSet, usage string, set func(string) error) {
	if f.kind() == "bool" {
		fs.BoolFunc(f.flag, usage, set)
		return
	}
	fs.Func(f.flag, usage, set)
}

// show formats f's field of w for Usage.
func (f field) show(w *Worker) string {
	switch p := f.ptr(w).(type) {
	case *[]string:
		return strings.Join(*p, ",")
	case *int:
		return strconv.Itoa(*p)
	case *Duration:
		return p.String()
	case *string:
		return *p
	case *Secret:
		return p.String()
	case *bool:
		if *p {
			return "true"
		}
	}
	return ""
}

// kind names the type of f's value for Usage.
func (f field) kind() string {
	switch f.ptr(&Worker{}).(type) {
	case *[]string:
		return "list"
	case *int:
		return "int"
	case *Duration:
		return "duration"
	case *bool:
		return "bool"
	}
	return "string"
}

// splitList splits a comma-separated list, dropping empty items and spaces.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// LoadWorker builds the worker's configuration from args (without the
// program name), the environment read through getenv (nil means os.Getenv)
// and the JSON file named by -config or COUPONPUSH_CONFIG. A flag beats its
// environment variable, which beats the file, which beats the default. The
// result has defaults applied and has passed Validate.
//
// LoadWorker prints nothing: for -h or -help it returns an error wrapping
// flag.ErrHelp, and the caller shows WorkerUsage.
func LoadWorker(args []string, getenv func(string) string) (Worker, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	configPath := fs.String("config", "", "JSON config file")
	var scratch Worker // flags are parsed here first, so a bad value fails at once
	raw := map[string]string{}
	for _, f := range fields {
		f.register(fs, f.usage, func(s string) error {
			raw[f.flag] = s
			return f.set(&scratch, s)
		})
	}
	if err := fs.Parse(args); err != nil {
		return Worker{}, fmt.Errorf("worker flags: %w", err)
	}
	if fs.NArg() > 0 {
		return Worker{}, fmt.Errorf("worker flags: unexpected argument %q", fs.Arg(0))
	}

	var w Worker
	path := *configPath
	if path == "" {
		path = strings.TrimSpace(getenv(EnvConfig))
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Worker{}, fmt.Errorf("read config file: %w", err)
		}
		if w, err = decodeWorker(data); err != nil {
			return Worker{}, fmt.Errorf("config file %s: %w", path, err)
		}
	}

	var errs []error
	for _, f := range fields {
		name := EnvPrefix + f.env
		if v := getenv(name); v != "" {
			if err := f.set(&w, v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s=%q: %w", name, v, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Worker{}, err
	}
	for _, f := range fields {
		if v, ok := raw[f.flag]; ok {
			if err := f.set(&w, v); err != nil {
				return Worker{}, fmt.Errorf("flag -%s: %w", f.flag, err)
			}
		}
	}

	if err := w.ReadSecretFiles(); err != nil {
		return Worker{}, fmt.Errorf("invalid worker config:\n%w", err)
	}
	w = w.WithDefaults()
	if err := w.Validate(); err != nil {
		return Worker{}, fmt.Errorf("invalid worker config:\n%w", err)
	}
	return w, nil
}

// decodeWorker decodes a JSON config file strictly: unknown fields, wrong
// types and trailing data are errors.
func decodeWorker(data []byte) (Worker, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w Worker
	if err := dec.Decode(&w); err != nil {
		return Worker{}, fmt.Errorf("decode: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Worker{}, errors.New("decode: unexpected data after the JSON object")
	}
	return w, nil
}

// WorkerUsage returns the help text for the worker's flags: each flag with
// its environment variable, meaning and default.
func WorkerUsage() string {
	var b strings.Builder
	b.WriteString("Usage: worker [flags]\n\n" +
		"Each flag can also be set by its environment variable or in the JSON\n" +
		"config file (see configs/worker.example.json); a flag beats the\n" +
		"environment, which beats the file. Zero or empty means the default.\n\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  -config path\t%s\tJSON config file\n", EnvConfig)
	def := Worker{}.WithDefaults()
	def.WorkerID = ""
	for _, f := range fields {
		line := fmt.Sprintf("  -%s %s\t%s%s\t%s", f.flag, f.kind(), EnvPrefix, f.env, f.usage)
		if d := f.show(&def); d != "" {
			line += " (default " + d + ")"
		}
		fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
	return b.String()
}
