// Package bench measures the reminder cluster on real engines and prints
// the figures docs/bench.md quotes: a same-millisecond burst (due → last
// published, pushes/s, lateness) against the bare pop+MPUB floor, lateness
// of reminders spread over time, and durable subscribes over HTTP.
package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/nsqio/go-nsq"
	"github.com/redis/go-redis/v9"

	"couponpush/client"
	"couponpush/config"
	"couponpush/internal/devtoken"
	"couponpush/internal/seed"
	"couponpush/queue"
	"couponpush/worker"
)

// Config is what to measure and where the engines are.
type Config struct {
	// Engines, as scripts/engines.sh start writes them.
	RedisAddr, MySQLDSN, NSQDAddr, ConsulAddr string

	Bursts []int // sizes of bursts due at one millisecond, each measured in turn (none skips)
	// Modes are the schedulers' ways of working the bursts, each on a
	// stack of its own: "ahead" (work prepared before due, the default)
	// and "due" (everything popped and built at due).
	Modes []string
	// PrepareAhead is how early "ahead" prepares (0: the worker's default).
	PrepareAhead time.Duration
	Spread       int           // reminders spread over SpreadOver (0 skips)
	SpreadOver   time.Duration // how long the spread reminders fall due over
	SubscribeFor time.Duration // how long the subscribe load runs (0 skips)
	Clients      int           // concurrent HTTP clients
	Workers      int           // in-process workers sharing the work
	Slots        int           // queues each worker works at once (0: the worker's default)
	PopBatch     int           // users per pop (0: the worker's default)
	SkipRaw      bool          // skip the bare pop+MPUB floor
	// SeedRate is the seeding rate, reminders a second, that a burst's or
	// the priority scenario's due time leaves room for (0: DefaultSeedRate).
	SeedRate int
	// Priority is how many high and as many low reminders fall due at one
	// millisecond on a cluster throttled to one worker with one slot, in
	// the first mode (0 skips).
	Priority   int
	CPUProfile string // write a CPU profile of the burst's drain here
	// AuthOff runs the workers with auth off; by default they check real
	// tokens (an operator token, HS256 user tokens).
	AuthOff bool
	Logger  *slog.Logger
}

// Run measures and writes a report to out.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	prefix := fmt.Sprintf("bench%d", time.Now().UnixNano()%1_000_000_000)
	tokens, err := identity(cfg.AuthOff)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "couponpush bench: %d workers in-process, %s, engines redis=%s nsqd=%s, prefix %s\n", cfg.Workers, authName(tokens), cfg.RedisAddr, cfg.NSQDAddr, prefix)
	dsn, err := mysql.ParseDSN(cfg.MySQLDSN)
	if err != nil {
		return fmt.Errorf("mysql dsn: %w", err)
	}
	dsn.DBName = "couponpush_bench"
	cfg.MySQLDSN = dsn.FormatDSN()
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr})
	defer rdb.Close()
	db, err := sql.Open("mysql", cfg.MySQLDSN)
	if err != nil {
		return err
	}
	defer db.Close()
	newStack := func(cfg Config, mode string) (*stack, error) {
		wc := config.Worker{WorkAhead: config.WorkAheadOn, PrepareAhead: config.Duration(cfg.PrepareAhead)}.WithDefaults()
		if mode == "due" {
			wc.WorkAhead = config.WorkAheadOff
		}
		idx, err := queue.New(rdb, queue.Options{Prefix: prefix, PrepareAhead: wc.Ahead(), ClassWindow: time.Duration(wc.MergeWindow),
			Ageing: time.Duration(wc.PriorityAgeing)})
		if err != nil {
			return nil, err
		}
		env := &stack{cfg: cfg, prefix: prefix, rdb: rdb, db: db, idx: idx, tokens: tokens, mode: mode, ahead: wc.Ahead()}
		if err := env.start(ctx); err != nil {
			env.stop()
			return nil, err
		}
		return env, nil
	}
	modes := cfg.Modes
	if len(modes) == 0 {
		modes = []string{"ahead"}
	}
	for _, mode := range modes {
		if mode != "ahead" && mode != "due" {
			return fmt.Errorf("mode %q is not ahead or due", mode)
		}
	}
	var env *stack
	defer func() {
		if env != nil {
			env.stop()
		}
	}()
	for i, mode := range modes {
		if len(cfg.Bursts) == 0 && cfg.Spread == 0 && i > 0 {
			break
		}
		if env != nil {
			env.stop()
		}
		if env, err = newStack(cfg, mode); err != nil {
			return err
		}
		if len(cfg.Bursts) > 0 || cfg.Spread > 0 {
			fmt.Fprintf(out, "\nworkers in mode %q", mode)
			if env.ahead > 0 {
				fmt.Fprintf(out, " (work prepared up to %v before due)", env.ahead)
			}
			fmt.Fprintln(out)
		}
		for _, k := range cfg.Bursts {
			if err := env.reportBurst(ctx, k, out); err != nil {
				return err
			}
		}
		if cfg.Spread > 0 {
			r, err := env.spread(ctx, cfg.Spread, cfg.SpreadOver)
			if err != nil {
				return fmt.Errorf("spread: %w", err)
			}
			fmt.Fprintf(out, "\nspread: %d reminders over %v\n", cfg.Spread, cfg.SpreadOver)
			fmt.Fprintf(out, "  seeded once %s\n", r.settled)
			fmt.Fprintf(out, "  lateness at consumer   p50 %v  p99 %v  max %v\n", r.late.p(50), r.late.p(99), r.late.p(100))
		}
	}
	if cfg.SubscribeFor > 0 {
		n, d, err := env.subscribe(ctx, cfg.Clients, cfg.SubscribeFor)
		if err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		fmt.Fprintf(out, "\nsubscribe: %d durable PUTs (rows counted in MySQL) from %d HTTP clients in %v: %.0f/s\n", n, cfg.Clients, d.Round(time.Millisecond), float64(n)/d.Seconds())
	}
	if cfg.Priority > 0 {
		env.stop()
		slow := cfg
		slow.Workers, slow.Slots = 1, 1
		if env, err = newStack(slow, modes[0]); err != nil {
			return err
		}
		if err := env.reportPriority(ctx, cfg.Priority, out); err != nil {
			return fmt.Errorf("priority: %w", err)
		}
	}
	return nil
}

// reportBurst measures a burst of k and its raw floor and reports both.
func (s *stack) reportBurst(ctx context.Context, k int, out io.Writer) error {
	cfg := s.cfg
	// The floor runs first, once the machine is quiet: run after the burst
	// it shared the cores with MariaDB purging the burst's sent-marks and
	// took up to three times as long, flattering ours.
	var raw RawResult
	var settled string
	if !cfg.SkipRaw {
		settled = settle(ctx)
		var err error
		raw, err = Raw(ctx, s.rdb, RawConfig{NSQDAddr: cfg.NSQDAddr, Topic: s.prefix + "_raw", Prefix: fmt.Sprintf("%s:%d", s.prefix, k), Members: k})
		if err != nil {
			return fmt.Errorf("raw: %w", err)
		}
	}
	r, err := s.burst(ctx, k)
	if err != nil {
		return fmt.Errorf("burst: %w", err)
	}
	fmt.Fprintf(out, "\nburst: %d reminders due at one millisecond (seeded at %.0f/s)\n", k, r.loadRate)
	fmt.Fprintf(out, "  seeded once %s\n", r.settled)
	fmt.Fprintf(out, "  Redis memory per pending reminder  %.0f B\n", r.bytesPer)
	if s.ahead > 0 {
		fmt.Fprintf(out, "  prepared before due    %d pushes (%d sealed), %+.0f B of Redis memory each\n", r.prepared, r.sealed, r.prepBytes)
	}
	fmt.Fprintf(out, "  due → last published   %v\n", r.drain.Round(time.Millisecond))
	fmt.Fprintf(out, "  pushes per second      %.0f\n", float64(k)/r.drain.Seconds())
	fmt.Fprintf(out, "  lateness at consumer   p50 %v  p99 %v  max %v\n", r.late.p(50), r.late.p(99), r.late.p(100))
	fmt.Fprintf(out, "  %s\n", r.steps)
	fmt.Fprintf(out, "  due → all marked sent in MySQL  %v\n", r.marked.Round(time.Millisecond))
	if !cfg.SkipRaw {
		fmt.Fprintf(out, "  raw floor, measured before the burst once %s\n", settled)
		fmt.Fprintf(out, "  raw floor (bare bounded Lua pop + MPUB, one loop): %v, %.0f/s\n", raw.Took.Round(time.Millisecond), float64(k)/raw.Took.Seconds())
		fmt.Fprintf(out, "  machine CPU during the floor: busy %v of %v; redis-server CPU %v\n",
			raw.Busy.Round(time.Millisecond), raw.Total.Round(time.Millisecond), raw.Redis.Round(time.Millisecond))
		fmt.Fprintf(out, "  ours as a fraction of the floor: %.2f\n", raw.Took.Seconds()/r.drain.Seconds())
	}
	return nil
}

// stack is the workers under test and an HTTP client to the first.
type stack struct {
	mode    string        // "ahead" or "due"
	ahead   time.Duration // the workers' PrepareAhead (0: none)
	cfg     Config
	prefix  string
	rdb     *redis.Client
	db      *sql.DB
	idx     *queue.Client
	queues  int // the workers' queue count (the default: no Consul key)
	workers []*worker.Worker
	api     *client.Client // the first worker's API, as the operator
	run     int
	tokens  devtoken.Tokens
	// what prepared() said when the current burst was seeded
	prepBase, sealBase int64
}

func (s *stack) start(ctx context.Context) error {
	log := s.cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for i := 0; i < s.cfg.Workers; i++ {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		wc := config.Worker{
			HTTPAddr: addr, OpsAddr: "127.0.0.1:0", RedisAddrs: []string{s.cfg.RedisAddr}, RedisPrefix: s.prefix,
			MySQLDSN: s.cfg.MySQLDSN, NSQDAddr: s.cfg.NSQDAddr, Topic: s.prefix,
			ConsulAddr: s.cfg.ConsulAddr, ConsulPrefix: s.prefix, ServiceName: s.prefix,
			WorkerID: fmt.Sprintf("%s-w%d", s.prefix, i+1), LogLevel: "warn", RateLimits: config.RateLimitsOff,
			Slots: s.cfg.Slots, PopBatch: s.cfg.PopBatch,
			WorkAhead: config.WorkAheadOn, PrepareAhead: config.Duration(s.ahead),
		}
		if s.ahead == 0 {
			wc.WorkAhead, wc.PrepareAhead = config.WorkAheadOff, 0
		}
		wc = withIdentity(wc, s.tokens).WithDefaults()
		if err := wc.Validate(); err != nil {
			return err
		}
		w, err := worker.Start(ctx, wc, log)
		if err != nil {
			return err
		}
		s.workers = append(s.workers, w)
		s.queues = wc.DefaultQueueCount
		if i == 0 {
			if s.api, err = apiClient("http://"+addr, s.tokens.Operator); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *stack) stop() {
	for _, w := range s.workers {
		_ = w.Stop()
	}
}

func (s *stack) published() int64 {
	var n int64
	for _, w := range s.workers {
		n += w.Stats().Published.Load()
	}
	return n
}

// stallAfter is how long a drain may go without a publish before the
// bench gives up on it: a burst publishes every few milliseconds.
const stallAfter = time.Minute

// waitPublished waits until the workers have published k pushes since
// base, due at due, and fails with what each worker's scheduler counted
// when none comes for stallAfter from due on.
func (s *stack) waitPublished(base int64, k int, due time.Time) error {
	last, lastAt := s.published(), due
	for n := last; n-base < int64(k); n = s.published() {
		if n != last && time.Now().After(due) {
			last, lastAt = n, time.Now()
		}
		if time.Since(lastAt) > stallAfter {
			return fmt.Errorf("only %d of %d published, none in the last %v; %s", n-base, k, stallAfter, s.schedulerCounts())
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// schedulerCounts says what each worker's scheduler has counted, for a
// drain that stalled.
func (s *stack) schedulerCounts() string {
	var b strings.Builder
	for i, w := range s.workers {
		st := w.Stats()
		fmt.Fprintf(&b, "worker %d: ticks %d, leases taken %d, prepared %d, sealed %d, published %d, publish errors %d, dead-lettered %d, fenced %d, yields %d; ",
			i+1, st.Ticks.Load(), st.LeasesAcquired.Load(), st.Prepared.Load(), st.Sealed.Load(), st.Published.Load(),
			st.PublishErrs.Load(), st.DeadLettered.Load(), st.Fenced.Load(), st.Yields.Load())
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// prepared counts pushes the workers prepared ahead of due, and sealed.
func (s *stack) prepared() (prepared, sealed int64) {
	for _, w := range s.workers {
		prepared += w.Stats().Prepared.Load()
		sealed += w.Stats().Sealed.Load()
	}
	return prepared, sealed
}

// marked counts reminders the workers recorded as sent in MySQL.
func (s *stack) marked() int64 {
	var n int64
	for _, w := range s.workers {
		n += w.Stats().Marked.Load()
	}
	return n
}

// steps sums the workers' time per delivery step.
func (s *stack) steps() (pop, build, publish, ack, prepare time.Duration) {
	for _, w := range s.workers {
		st := w.Stats()
		pop += time.Duration(st.PopNs.Load())
		build += time.Duration(st.BuildNs.Load())
		publish += time.Duration(st.PublishNs.Load())
		ack += time.Duration(st.AckNs.Load())
		prepare += time.Duration(st.PrepareNs.Load())
	}
	return
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// lateness is a sorted sample of durations.
type lateness []time.Duration

func (l lateness) p(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	i := int(float64(len(l)-1) * q / 100)
	return l[i].Round(time.Millisecond)
}

type result struct {
	drain     time.Duration
	late      lateness
	loadRate  float64
	bytesPer  float64       // Redis memory per pending reminder
	prepBytes float64       // more Redis memory per prepared push, at due
	marked    time.Duration // due → every reminder marked sent in MySQL
	prepared  int64         // pushes prepared before due (work ahead)
	sealed    int64         // of them, sealed (encoded and stored)
	steps     string        // where the slots and Redis spent the drain
	settled   string        // how quiet the machine was when seeding began
}

// template creates a template whose reminders (lead 60 s) fall due at due.
func (s *stack) template(ctx context.Context, due time.Time) (int64, error) {
	return s.templateOf(ctx, due, client.PriorityNormal)
}

// templateOf is template with the given priority.
func (s *stack) templateOf(ctx context.Context, due time.Time, priority string) (int64, error) {
	s.run++
	grab := due.Add(time.Minute)
	t, err := s.api.CreateTemplate(ctx, client.TemplateDraft{
		Name: fmt.Sprintf("bench %d", s.run), Type: client.TypeFixed, Value: 500, Stock: 1_000_000,
		GrabStart: grab, GrabEnd: grab.Add(time.Hour), ValidDays: 7, Priority: priority,
	})
	return t.ID, err
}

// load writes n pending subscriptions for users [from, from+n), each to
// the template pick gives, due at its time and of its priority, through internal/seed (the
// rows and index entries the subscription service writes, in bulk), and
// returns the rate. HTTP subscribes are measured on their own (subscribe).
func (s *stack) load(ctx context.Context, from, n int, pick func(u int) queue.Entry) (float64, error) {
	entries := make([]queue.Entry, n)
	for i := range entries {
		u := from + i
		entries[i] = pick(u)
		entries[i].UserID = int64(u)
	}
	begin := time.Now()
	if err := seed.Subscriptions(ctx, s.db, s.idx.NewRouter(func() int { return s.queues }), 32, entries); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(begin).Seconds(), nil
}

// DefaultSeedRate is Config.SeedRate's default: a loaded machine's rate
// (seeding has run at 5,000-32,000/s here).
const DefaultSeedRate = 5000

// seedRoom is how long seeding k reminders may take at cfg.SeedRate.
func (s *stack) seedRoom(k int) time.Duration {
	rate := s.cfg.SeedRate
	if rate <= 0 {
		rate = DefaultSeedRate
	}
	return time.Duration(k) * time.Second / time.Duration(rate)
}

func (s *stack) meter(capacity int) (*meter, error) {
	return newMeter(s.cfg.NSQDAddr, s.prefix, capacity)
}

func (s *stack) burst(ctx context.Context, k int) (result, error) {
	// Room for seeding at -seed-rate (DefaultSeedRate), plus the workers'
	// PrepareAhead, so that nothing is prepared while the seeding runs
	// (the memory per reminder is read across it).
	settled := settle(ctx) // the last phase's writes absorbed, as for the floor
	due := time.Now().Add(5*time.Second + s.ahead + s.seedRoom(k)).Truncate(time.Second)
	tid, err := s.template(ctx, due)
	if err != nil {
		return result{}, err
	}
	mem0 := redisInfo(ctx, s.rdb, "memory", "used_memory")
	s.prepBase, s.sealBase = s.prepared()
	_, _, _, _, r0 := s.steps()
	// Counted from before the seeding, so that a push published before
	// the bench reads the drain's start is still counted.
	base, markBase := s.published(), s.marked()
	rate, err := s.load(ctx, 1, k, func(int) queue.Entry { return queue.Entry{TemplateID: tid, PushAt: due} })
	if err != nil {
		return result{}, err
	}
	mem1 := redisInfo(ctx, s.rdb, "memory", "used_memory")
	bytesPer := (mem1 - mem0) / float64(k)
	if time.Now().After(due) {
		return result{}, fmt.Errorf("loading %d reminders took past their due time (seeded at %.0f/s); lower -burst or -seed-rate", k, rate)
	}
	col, err := s.meter(k)
	if err != nil {
		return result{}, err
	}
	defer col.stop()
	// The drain's figures (profile, Redis CPU, slot times) start at due,
	// not while the workers idle before it.
	time.Sleep(time.Until(due.Add(-20 * time.Millisecond)))
	if n := s.published() - base; n > 0 {
		return result{}, fmt.Errorf("%d pushes published %v before due", n, time.Until(due).Round(time.Millisecond))
	}
	if late := time.Since(due); late > 0 {
		return result{}, fmt.Errorf("the bench reached due %v late; lower -seed-rate", late.Round(time.Millisecond))
	}
	var preparedBytes float64 // Redis memory per prepared push, over what it took pending
	if n, _ := s.prepared(); n > s.prepBase {
		preparedBytes = (redisInfo(ctx, s.rdb, "memory", "used_memory") - mem1) / float64(n-s.prepBase)
	}
	stopProfile, err := startProfile(s.cfg.CPUProfile)
	if err != nil {
		return result{}, err
	}
	defer func() { _ = stopProfile() }() // on an error before the drain ends
	prepared, sealed := s.prepared()
	cpu0, cmd0, mach0, self0 := redisCPU(ctx, s.rdb), redisCommands(ctx, s.rdb), machineCPU(), selfCPU()
	p0, b0, u0, a0, r1 := s.steps()
	if err := s.waitPublished(base, k, due); err != nil {
		return result{}, err
	}
	drain := time.Since(due)
	if err := stopProfile(); err != nil { // the profile covers the drain, not the marking after it
		return result{}, err
	}
	p1, b1, u1, a1, _ := s.steps()
	steps := fmt.Sprintf("during the drain: slot time in pop %v, build %v, publish %v, ack %v; redis-server CPU %v",
		(p1 - p0).Round(time.Millisecond), (b1 - b0).Round(time.Millisecond), (u1 - u0).Round(time.Millisecond),
		(a1 - a0).Round(time.Millisecond), (redisCPU(ctx, s.rdb) - cpu0).Round(time.Millisecond))
	if s.ahead > 0 {
		steps = fmt.Sprintf("before due: slot time preparing %v\n  ", (r1-r0).Round(time.Millisecond)) + steps
	}
	busy, steal, total := machineCPU().since(mach0)
	steps += fmt.Sprintf("\n  machine CPU during the drain: busy %v of %v (%d cores; this process, workers and consumer, %v), stolen by the hypervisor %v",
		busy.Round(time.Millisecond), total.Round(time.Millisecond), runtime.NumCPU(), (selfCPU() - self0).Round(time.Millisecond), steal.Round(time.Millisecond))
	steps += "\n  Redis time by command during the drain (scripts include the commands they call): " + topCommands(cmd0, redisCommands(ctx, s.rdb), 6)
	late, err := col.wait(k)
	if err != nil {
		return result{}, err
	}
	// Let MySQL learn the whole burst before the next phase, so phases do
	// not share the machine; how long that takes is a figure of its own.
	for s.marked()-markBase < int64(k) {
		if time.Since(due) > 5*time.Minute {
			return result{}, fmt.Errorf("only %d of %d sent-marks in MySQL after 5 minutes", s.marked()-markBase, k)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return result{settled: settled, drain: drain, late: late, loadRate: rate, bytesPer: bytesPer, prepBytes: preparedBytes, marked: time.Since(due), steps: steps,
		prepared: prepared - s.prepBase, sealed: sealed - s.sealBase}, nil
}

func (s *stack) spread(ctx context.Context, k int, over time.Duration) (result, error) {
	const templates = 100
	settled := settle(ctx)
	start := time.Now().Add(5*time.Second + time.Duration(k)*time.Second/10000).Truncate(time.Second)
	tids := make([]int64, templates)
	for i := range tids {
		id, err := s.template(ctx, start.Add(over*time.Duration(i)/templates))
		if err != nil {
			return result{}, err
		}
		tids[i] = id
	}
	col, err := s.meter(k)
	if err != nil {
		return result{}, err
	}
	defer col.stop()
	if _, err := s.load(ctx, 10_000_001, k, func(u int) queue.Entry {
		return queue.Entry{TemplateID: tids[u%templates], PushAt: start.Add(over * time.Duration(u%templates) / templates)}
	}); err != nil {
		return result{}, err
	}
	if time.Now().After(start) {
		return result{}, fmt.Errorf("loading took past the first due time; lower -spread")
	}
	late, err := col.wait(k)
	return result{settled: settled, late: late}, err
}

// settle waits, up to a minute, for the machine to be quiet (under a fifth
// of its CPU busy over a second: engines done with the last phase's
// writes), and says how that went.
func settle(ctx context.Context) string {
	const most, window, quiet = time.Minute, time.Second, 0.2
	begin := time.Now()
	var share float64
	for time.Since(begin) < most && ctx.Err() == nil {
		c0 := machineCPU()
		time.Sleep(window)
		busy, _, total := machineCPU().since(c0)
		if total <= 0 {
			return "the machine's CPU could not be read"
		}
		if share = busy.Seconds() / total.Seconds(); share < quiet {
			return fmt.Sprintf("the machine was quiet (%.0f%% busy over %v, after %v)", 100*share, window, time.Since(begin).Round(time.Second))
		}
	}
	return fmt.Sprintf("the machine was still %.0f%% busy after %v", 100*share, most)
}

func quiet(p *nsq.Producer) { p.SetLogger(log.New(io.Discard, "", 0), nsq.LogLevelError) }

// redisCommands reads INFO commandstats: microseconds spent per command.
func redisCommands(ctx context.Context, rdb *redis.Client) map[string]int64 {
	out := map[string]int64{}
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return out
	}
	for _, line := range strings.Split(info, "\n") {
		name, stats, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				out[name], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out
}

// topCommands formats the n commands that spent the most time between two
// commandstats readings.
func topCommands(before, after map[string]int64, n int) string {
	type spent struct {
		name string
		us   int64
	}
	var all []spent
	for name, us := range after {
		if d := us - before[name]; d > 0 {
			all = append(all, spent{name, d})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].us > all[j].us })
	var parts []string
	for _, sp := range all[:min(n, len(all))] {
		parts = append(parts, fmt.Sprintf("%s %v", sp.name, (time.Duration(sp.us)*time.Microsecond).Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// cpuTimes are the machine's CPU counters from /proc/stat (all cores), in
// clock ticks; zero where /proc is not there.
type cpuTimes struct{ busy, steal, total int64 }

func machineCPU() cpuTimes {
	var t cpuTimes
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return t
	}
	line, _, _ := strings.Cut(string(b), "\n")
	// cpu user nice system idle iowait irq softirq steal guest guest_nice;
	// guest time is counted in user and nice already.
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return t
	}
	for i, v := range f[1:9] {
		n, _ := strconv.ParseInt(v, 10, 64)
		t.total += n
		switch i {
		case 3, 4: // idle, iowait
		case 7:
			t.steal += n
		default:
			t.busy += n
		}
	}
	return t
}

// since converts the counters gone by since c0 to durations (USER_HZ=100).
func (c cpuTimes) since(c0 cpuTimes) (busy, steal, total time.Duration) {
	const tick = 10 * time.Millisecond
	return time.Duration(c.busy-c0.busy) * tick, time.Duration(c.steal-c0.steal) * tick, time.Duration(c.total-c0.total) * tick
}

// selfCPU is the CPU time this process has used (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startProfile starts a CPU profile into file (none for ""); the function
// it returns stops it and closes the file, once (later calls do nothing).
func startProfile(file string) (func() error, error) {
	if file == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	stopped := false
	return func() error {
		if stopped {
			return nil
		}
		stopped = true
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// redisCPU is the CPU time redis-server has used (user + system).
func redisCPU(ctx context.Context, rdb *redis.Client) time.Duration {
	s := redisInfo(ctx, rdb, "cpu", "used_cpu_user") + redisInfo(ctx, rdb, "cpu", "used_cpu_sys")
	return time.Duration(s * float64(time.Second))
}

// redisInfo reads one numeric field of an INFO section (0 if absent).
func redisInfo(ctx context.Context, rdb *redis.Client, section, field string) float64 {
	info, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && k == field {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}
