package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/client"
	"couponpush/config"
	"couponpush/internal/devtoken"
	"couponpush/worker"
)

// TrustConfig is what the trust bench measures and where the engines are.
type TrustConfig struct {
	// Engines, as scripts/engines.sh start writes them.
	RedisAddr, MySQLDSN, ConsulAddr string

	Clients int           // concurrent HTTP clients
	For     time.Duration // how long each round runs
	Rounds  int           // rounds of each mode, per load
	// CPUProfile, if set, starts the names of CPU profiles of the timed
	// rounds, one file a round: CPUProfile.<mode>.<unit>.<round> (mode
	// checked or unchecked, unit claim or PUT). `go tool pprof` merges the
	// files it is given, so one mode's can be compared with the other's
	// (-diff_base); see docs/bench.md.
	CPUProfile string
	Logger     *slog.Logger
}

// RunTrust measures what the auth and limit checks cost: durable claims/s
// (one hot template) and durable PUTs/s over HTTP, each against two
// workers on the same engines, prefix and templates, one with auth and
// rate limits on ("checked") and one with both off ("unchecked"), in
// alternating rounds (in turn checked first and unchecked first) so the
// machine's other load hits both alike. It
// prints every round, the median ratio, and fails if a limit refused any
// request.
func RunTrust(ctx context.Context, cfg TrustConfig, out io.Writer) error {
	prefix := fmt.Sprintf("trustbench%d", time.Now().UnixNano()%1_000_000_000)
	db, dsn, err := freshDB(ctx, cfg.MySQLDSN, "couponpush_trustbench")
	if err != nil {
		return err
	}
	defer db.Close()
	cfg.MySQLDSN = dsn
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr})
	defer rdb.Close()
	tokens, err := devtoken.New()
	if err != nil {
		return err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	checked := trustMode{name: "checked", tokens: tokens}
	unchecked := trustMode{name: "unchecked"}
	for i, m := range []*trustMode{&checked, &unchecked} {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		wc := config.Worker{
			Roles: []string{config.RoleAPI}, HTTPAddr: addr, OpsAddr: "127.0.0.1:0", RedisAddrs: []string{cfg.RedisAddr}, RedisPrefix: prefix,
			MySQLDSN: cfg.MySQLDSN, ConsulAddr: cfg.ConsulAddr, ConsulPrefix: prefix, ServiceName: prefix,
			WorkerID: fmt.Sprintf("%s-%s", prefix, m.name), LogLevel: "warn", RateLimits: "off",
		}
		wc = withIdentity(wc, m.tokens)
		if i == 0 {
			// Every limit checked on every request; the per-user limits
			// keep their defaults (each request is a new user), the per-IP
			// ones (every client is 127.0.0.1) are far above the load.
			wc.RateLimits = "on"
			wc.LimitClaimIPRate, wc.LimitClaimIPBurst = config.MaxLimitRate, config.MaxLimitRate
			wc.LimitSubscribeIPRate, wc.LimitSubscribeIPBurst = config.MaxLimitRate, config.MaxLimitRate
		}
		wc = wc.WithDefaults()
		if err := wc.Validate(); err != nil {
			return err
		}
		w, err := worker.Start(ctx, wc, log)
		if err != nil {
			return err
		}
		defer func() { _ = w.Stop() }()
		if m.api, err = apiClient("http://"+addr, m.tokens.Operator); err != nil {
			return err
		}
	}
	var version string
	if err := db.QueryRowContext(ctx, "SELECT @@version").Scan(&version); err != nil {
		return fmt.Errorf("mysql: %w", err)
	}
	fmt.Fprintf(out, "couponpush trust bench: %d HTTP clients, two workers in-process on the same engines, prefix and templates, MariaDB %s, prefix %s\n",
		cfg.Clients, version, prefix)
	fmt.Fprintf(out, "  checked:   auth on (HS256 user tokens, verified per request) + rate limits on (per-user limits at their defaults, each request a new user; per-IP at %d/s)\n", config.MaxLimitRate)
	fmt.Fprintf(out, "  unchecked: auth off + rate limits off (blocks are still looked up, as they always are)\n")
	fmt.Fprintf(out, "  %d rounds of %v per mode and load, alternating (checked first, then unchecked first, ...); user tokens are signed before each round, outside the timing\n", cfg.Rounds, cfg.For)

	now := time.Now().UTC()
	hot, err := checked.api.CreateTemplate(ctx, client.TemplateDraft{
		Name: "hot", Type: client.TypeFixed, Value: 500, Stock: 1_000_000_000, SubStocks: 8,
		GrabStart: now.Add(-time.Minute), GrabEnd: now.Add(time.Hour), ValidDays: 7})
	if err != nil {
		return fmt.Errorf("create the hot template: %w", err)
	}
	later, err := checked.api.CreateTemplate(ctx, client.TemplateDraft{
		Name: "later", Type: client.TypeFixed, Value: 500, Stock: 1_000_000_000,
		GrabStart: now.Add(time.Hour), GrabEnd: now.Add(2 * time.Hour), ValidDays: 7})
	if err != nil {
		return fmt.Errorf("create the subscribe template: %w", err)
	}
	claims := trustLoad{
		name: "claims over HTTP (one hot template, each claim a new user)", unit: "claim",
		rows: func(ctx context.Context) (int64, error) {
			return countRows(ctx, db, "SELECT COUNT(*) FROM coupons WHERE template_id = ?", hot.ID)
		},
		send: func(ctx context.Context, c *client.Client, u int64, token string) (bool, error) {
			_, created, err := c.Claim(ctx, hot.ID, client.ClaimRequest{UserID: u, RequestID: "t" + strconv.FormatInt(u, 10)},
				client.WithToken(token), client.Discard())
			return created, err
		},
	}
	puts := trustLoad{
		name: "subscription PUTs over HTTP (each PUT a new user)", unit: "PUT",
		rows: func(ctx context.Context) (int64, error) {
			return countRows(ctx, db, "SELECT COUNT(*) FROM subscriptions WHERE template_id = ?", later.ID)
		},
		send: func(ctx context.Context, c *client.Client, u int64, token string) (bool, error) {
			_, created, err := c.Subscribe(ctx, u, later.ID, client.SubscribeRequest{}, client.WithToken(token), client.Discard())
			return created, err
		},
	}
	refused := 0
	for _, l := range []trustLoad{claims, puts} {
		n, err := l.run(ctx, cfg, rdb, &checked, &unchecked, out)
		if err != nil {
			return fmt.Errorf("%s: %w", l.unit, err)
		}
		refused += n
	}
	if refused > 0 {
		return fmt.Errorf("the rate limits refused %d requests (429): the checked figures are not of admitted requests", refused)
	}
	return nil
}

// trustMode is one of the trust bench's workers.
type trustMode struct {
	name   string
	api    *client.Client  // as the operator (none when auth is off)
	tokens devtoken.Tokens // zero: auth off
}

// trustLoad is one kind of request the trust bench sends.
type trustLoad struct {
	name, unit string
	// rows counts the durable rows the load has written so far.
	rows func(context.Context) (int64, error)
	// send sends the load's request for user u with token to c: created
	// is a 201; the answer is read, not decoded (client.Discard).
	send func(ctx context.Context, c *client.Client, u int64, token string) (created bool, err error)
}

// trustUsers hands out the trust bench's users: each request is a new one.
var trustUsers atomic.Int64

// round is what one round measured.
type round struct {
	ok, refused int64
	elapsed     time.Duration
	lat         lateness
	cpu, redis  time.Duration // this process (workers and clients), redis-server
	commands    float64       // commands Redis processed
}

func (r round) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// run warms both modes up, runs cfg.Rounds alternating rounds of each,
// prints them and returns how many requests the limits refused.
func (l trustLoad) run(ctx context.Context, cfg TrustConfig, rdb *redis.Client, a, b *trustMode, out io.Writer) (int, error) {
	// Warm up connections and caches; the warm-up's rate sizes the pools
	// of pre-signed tokens.
	peak := 0.0
	for _, m := range []*trustMode{a, b} {
		r, err := l.round(ctx, cfg.Clients, time.Second, 20_000, m, rdb, "")
		if err != nil {
			return 0, fmt.Errorf("warm-up of %s: %w", m.name, err)
		}
		peak = max(peak, r.rate())
	}
	pool := max(20_000, int(4*peak*cfg.For.Seconds()))
	fmt.Fprintf(out, "\n%s, %d clients:\n", l.name, cfg.Clients)
	var ras, rbs []round
	var ratios []float64
	for i := range cfg.Rounds {
		// Every other round runs b first (a b, b a, a b, ...), so a drift
		// in the machine's load falls on both modes alike.
		order := []*trustMode{a, b}
		if i%2 == 1 {
			order = []*trustMode{b, a}
		}
		var ra, rb round
		for _, m := range order {
			r, err := l.round(ctx, cfg.Clients, cfg.For, pool, m, rdb, profileName(cfg.CPUProfile, m, l, i))
			if err != nil {
				return 0, fmt.Errorf("round %d, %s: %w", i+1, m.name, err)
			}
			if m == a {
				ra = r
			} else {
				rb = r
			}
		}
		ras, rbs, ratios = append(ras, ra), append(rbs, rb), append(ratios, ra.rate()/rb.rate())
		fmt.Fprintf(out, "  round %d  checked %6.0f/s (%d refused)  unchecked %6.0f/s  checked/unchecked %.3f\n",
			i+1, ra.rate(), ra.refused, rb.rate(), ratios[i])
	}
	var cpu [2]time.Duration // per request, this process and redis-server
	for j, s := range []struct {
		m  *trustMode
		rs []round
	}{{a, ras}, {b, rbs}} {
		t := sumRounds(s.rs)
		cpu[j] = perRequest(t.cpu+t.redis, t.ok)
		fmt.Fprintf(out, "  %-9s %d durable %ss (rows counted in MySQL) in %v, %d refused; latency p50 %v p99 %v; per %s: CPU of this process (workers and clients) %v, redis-server %v, %.1f Redis commands\n",
			s.m.name, t.ok, l.unit, t.elapsed.Round(time.Millisecond), t.refused, t.lat.p(50), t.lat.p(99), l.unit,
			perRequest(t.cpu, t.ok), perRequest(t.redis, t.ok), t.commands/float64(max(t.ok, 1)))
	}
	med := median(ratios)
	verdict := "under"
	if 1-med >= 0.10 {
		verdict = "over"
	}
	fmt.Fprintf(out, "  median checked/unchecked %.3f: auth and limits cost %.1f%% of %ss/s (%s the 10%% bar)\n", med, 100*(1-med), l.unit, verdict)
	fmt.Fprintf(out, "  CPU per %s (this process and redis-server) checked/unchecked %.3f: %v more per %s\n",
		l.unit, float64(cpu[0])/float64(cpu[1]), cpu[0]-cpu[1], l.unit)
	return int(sumRounds(ras).refused), nil
}

// round sends requests of l to m from clients goroutines for d, each a new
// user whose token (if m checks them) is signed before the clock starts,
// at most pool users. 201s count; 429s are counted as refused; any other
// answer is an error. The 201s are checked against the rows in MySQL. With
// a profile name, the timed part is CPU-profiled into that file.
func (l trustLoad) round(ctx context.Context, clients int, d time.Duration, pool int, m *trustMode, rdb *redis.Client, profile string) (round, error) {
	first := trustUsers.Add(int64(pool)) - int64(pool) + 1
	tokens := make([]string, pool)
	if m.tokens.Secret != nil {
		for i := range tokens {
			tok, err := m.tokens.User(first + int64(i))
			if err != nil {
				return round{}, err
			}
			tokens[i] = tok
		}
	}
	runtime.GC() // the signing's garbage is not the round's
	before, err := l.rows(ctx)
	if err != nil {
		return round{}, err
	}
	var (
		next, ok, refused atomic.Int64
		wg                sync.WaitGroup
		mu                sync.Mutex
		failed            error
		lat               lateness
	)
	fail := func(err error) {
		mu.Lock()
		if failed == nil {
			failed = err
		}
		mu.Unlock()
	}
	stopProfile, err := startProfile(profile)
	if err != nil {
		return round{}, err
	}
	cpu0, redis0, cmd0 := selfCPU(), redisCPU(ctx, rdb), redisInfo(ctx, rdb, "stats", "total_commands_processed")
	begin := time.Now()
	stop := begin.Add(d)
	for range clients {
		wg.Go(func() {
			var mine lateness
			defer func() {
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
			for time.Now().Before(stop) {
				i := next.Add(1) - 1
				if i >= int64(pool) {
					fail(fmt.Errorf("ran out of %d pre-signed users (the pool is sized from the warm-up's rate)", pool))
					return
				}
				t0 := time.Now()
				created, err := l.send(ctx, m.api, first+i, tokens[i])
				switch {
				case err == nil && created:
					mine = append(mine, time.Since(t0))
					ok.Add(1)
				case errors.Is(err, client.ErrRateLimited):
					refused.Add(1)
				case err != nil:
					fail(err)
					return
				default:
					fail(fmt.Errorf("the %s of new user %d answered 200, not 201", l.unit, first+i))
					return
				}
			}
		})
	}
	wg.Wait()
	r := round{ok: ok.Load(), refused: refused.Load(), elapsed: time.Since(begin)}
	if err := stopProfile(); err != nil {
		return round{}, err
	}
	r.cpu, r.redis = selfCPU()-cpu0, redisCPU(ctx, rdb)-redis0
	r.commands = redisInfo(ctx, rdb, "stats", "total_commands_processed") - cmd0
	if failed != nil {
		return round{}, failed
	}
	slices.Sort(lat)
	r.lat = lat
	after, err := l.rows(ctx)
	if err != nil {
		return round{}, err
	}
	if after-before != r.ok {
		return round{}, fmt.Errorf("%d %ss answered 201 but MySQL gained %d rows", r.ok, l.unit, after-before)
	}
	return r, nil
}

// profileName is the CPU profile file of round i (from 0) of mode m and
// load l under prefix; "" without a prefix.
func profileName(prefix string, m *trustMode, l trustLoad, i int) string {
	if prefix == "" {
		return ""
	}
	return fmt.Sprintf("%s.%s.%s.%d", prefix, m.name, l.unit, i+1)
}

func sumRounds(rs []round) round {
	var t round
	for _, r := range rs {
		t.ok += r.ok
		t.refused += r.refused
		t.elapsed += r.elapsed
		t.cpu += r.cpu
		t.redis += r.redis
		t.commands += r.commands
		t.lat = append(t.lat, r.lat...)
	}
	slices.Sort(t.lat)
	return t
}

func perRequest(d time.Duration, n int64) time.Duration {
	return (d / time.Duration(max(n, 1))).Round(time.Microsecond)
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
