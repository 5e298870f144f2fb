package abuse

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/enginetest"
)

// engines are the two Redis set-ups every test runs on: a standalone
// server and a 3-master Redis Cluster, where a key outside its hash tag's
// slot or a script with keys on two slots would fail.
var engines = []struct {
	name  string
	addrs func(t *testing.T) []string
}{
	{"standalone", func(t *testing.T) []string { return []string{enginetest.RedisAddr(t)} }},
	{"cluster", func(t *testing.T) []string { return enginetest.RedisCluster(t) }},
}

func newClient(t testing.TB, addrs []string) redis.UniversalClient {
	t.Helper()
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newGuard(t *testing.T, rdb redis.UniversalClient, prefix string, edit func(*Config)) *Guard {
	t.Helper()
	cfg := Config{Prefix: prefix, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if edit != nil {
		edit(&cfg)
	}
	g, err := New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// onEngines runs test on each engine, in parallel, with a guard factory
// sharing one prefix and Redis.
func onEngines(t *testing.T, test func(t *testing.T, rdb redis.UniversalClient, guard func(func(*Config)) *Guard)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			addrs := e.addrs(t)
			prefix := enginetest.Prefix(t)
			rdb := newClient(t, addrs)
			test(t, rdb, func(edit func(*Config)) *Guard { return newGuard(t, newClient(t, addrs), prefix, edit) })
		})
	}
}

var ip1 = netip.MustParseAddr("192.0.2.1")

// settle waits until the first tokens that g's first Admit of a for
// subjects took (first.go) are older than their rounding, after which the
// limits admit their bursts to the request: within it, a subject's burst
// may be one short. A subject whose state is not a first token is not
// waited for.
func settle(t *testing.T, rdb redis.UniversalClient, g *Guard, a Action, subjects ...Subject) {
	t.Helper()
	ctx := context.Background()
	for _, s := range subjects {
		ttl, ok := g.firstTTLs[Rule{a, s.Kind}]
		if !ok {
			continue
		}
		key := g.keys.limit(a, s)
		for deadline := time.Now().Add(10 * time.Second); ; {
			v, err := rdb.Get(ctx, key).Result()
			if errors.Is(err, redis.Nil) || err == nil && v != firstMark {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			left, err := rdb.PTTL(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if left <= ttl-5*time.Millisecond {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the first token of %s still lives %v of %v", s, left, ttl)
			}
			time.Sleep(time.Millisecond / 2) // polls the condition above
		}
	}
}

func refusal(t *testing.T, err error, want error) *Refusal {
	t.Helper()
	var r *Refusal
	if !errors.As(err, &r) || !errors.Is(err, want) {
		t.Fatalf("Admit: %v, want %v", err, want)
	}
	return r
}

func TestLimitsAreShared(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, rdb redis.UniversalClient, guard func(func(*Config)) *Guard) {
		ctx := context.Background()
		limits := func(c *Config) {
			c.Limits = map[Rule]Limit{{Claim, User}: {Rate: 1, Burst: 3}, {Claim, IP}: {Rate: 1, Burst: 5}}
		}
		a, b := guard(limits), guard(limits) // two workers
		cases := []struct {
			name     string
			user     int64
			ip       netip.Addr
			admitted int
			by       Kind
		}{
			{"one user from many IPs", 1, netip.Addr{}, 3, User},
			{"many users from one IP", 0, ip1, 5, IP},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				admitted := 0
				for i := range 12 {
					g, user := a, tc.user
					if i%2 == 1 {
						g = b
					}
					if user == 0 {
						user = int64(100 + i)
					}
					err := g.Admit(ctx, Claim, user, tc.ip)
					if i == 0 {
						subjects := []Subject{UserSubject(user)}
						if tc.ip.IsValid() {
							subjects = append(subjects, IPSubject(tc.ip))
						}
						settle(t, rdb, a, Claim, subjects...)
					}
					if err == nil {
						admitted++
						continue
					}
					r := refusal(t, err, ErrLimited)
					if r.Kind != tc.by || r.RetryAfter <= 0 || r.RetryAfter > time.Second {
						t.Errorf("refusal %+v, want by %s with a retry within 1s", r, tc.by)
					}
				}
				if admitted != tc.admitted {
					t.Errorf("admitted %d of 12, want the burst %d", admitted, tc.admitted)
				}
			})
		}
		if err := a.Admit(ctx, Subscribe, 1, ip1); err != nil {
			t.Errorf("another action has its own limits (none here): %v", err)
		}
	})
}

func TestBlocks(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, _ redis.UniversalClient, guard func(func(*Config)) *Guard) {
		ctx := context.Background()
		placed := map[Who]int{}
		blocked := map[Kind]int{}
		g := guard(func(c *Config) {
			c.OnPlaced = func(w Who) { placed[w]++ }
			c.OnBlocked = func(_ Action, k Kind) { blocked[k]++ }
		})
		if _, err := g.Block(ctx, UserSubject(7), time.Second, "bot"); err != nil {
			t.Fatal(err)
		}
		long, err := g.Block(ctx, IPSubject(netip.MustParseAddr("::ffff:192.0.2.1")), time.Hour, "scraper")
		if err != nil {
			t.Fatal(err)
		}
		if long.Subject.ID != "192.0.2.1" || time.Until(long.Until) < 59*time.Minute {
			t.Errorf("block %+v", long)
		}
		if r := refusal(t, g.Admit(ctx, Claim, 7, netip.Addr{}), ErrBlocked); r.Kind != User {
			t.Errorf("refused by %s, want user", r.Kind)
		}
		if r := refusal(t, g.Admit(ctx, Subscribe, 8, ip1), ErrBlocked); r.Kind != IP {
			t.Errorf("refused by %s, want ip", r.Kind)
		}
		list, err := g.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].Subject != UserSubject(7) || list[0].Reason != "bot" || list[0].Who != Operator ||
			list[1].Subject.Kind != IP || list[1].Reason != "scraper" {
			t.Fatalf("list %+v", list)
		}
		// The user's block expires by itself.
		enginetest.Eventually(t, "the 1s block to expire", 20*time.Second, func() bool {
			return g.Admit(ctx, Claim, 7, netip.Addr{}) == nil
		})
		enginetest.Eventually(t, "the list to drop the expired block", 20*time.Second, func() bool {
			l, err := g.List(ctx)
			return err == nil && len(l) == 1 && l[0].Subject.Kind == IP
		})
		// The IP's is released.
		if err := g.Release(ctx, long.Subject); err != nil {
			t.Fatal(err)
		}
		if err := g.Release(ctx, long.Subject); !errors.Is(err, ErrNoBlock) {
			t.Errorf("second release: %v, want ErrNoBlock", err)
		}
		if err := g.Admit(ctx, Claim, 8, ip1); err != nil {
			t.Errorf("after release: %v", err)
		}
		if l, err := g.List(ctx); err != nil || len(l) != 0 {
			t.Errorf("list after release: %+v %v", l, err)
		}
		if placed[Operator] != 2 || blocked[User] < 1 || blocked[IP] != 1 {
			t.Errorf("placed %v, blocked %v", placed, blocked)
		}
	})
}

// TestBlocksCheckedWithLimits: with limits on, a block key (written here as
// Block writes it) refuses the user's and the IP's requests, and a request
// refused by a block still takes from its limit (doc.go).
func TestBlocksCheckedWithLimits(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, rdb redis.UniversalClient, guard func(func(*Config)) *Guard) {
		ctx := context.Background()
		g := guard(func(c *Config) {
			c.Limits = map[Rule]Limit{{Claim, User}: {Rate: 1, Burst: 3}, {Claim, IP}: {Rate: 1, Burst: 100}}
		})
		ip := netip.MustParseAddr("192.0.2.77")
		p := g.cfg.Prefix
		for _, key := range []string{p + ":{" + p + ":block:u:70}", p + ":{" + p + ":block:ip:192.0.2.77}"} {
			v := `{"reason":"placed by hand","who":"operator","until_ms":0}`
			if err := rdb.Set(ctx, key, v, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 3 {
			if r := refusal(t, g.Admit(ctx, Claim, 70, netip.Addr{}), ErrBlocked); r.Kind != User {
				t.Errorf("refused by %s, want user", r.Kind)
			}
			if i == 0 {
				settle(t, rdb, g, Claim, UserSubject(70))
			}
		}
		if r := refusal(t, g.Admit(ctx, Claim, 71, ip), ErrBlocked); r.Kind != IP {
			t.Errorf("refused by %s, want ip", r.Kind)
		}
		if err := g.Release(ctx, UserSubject(70)); err != nil {
			t.Fatal(err)
		}
		// The three blocked requests took the user's burst.
		if r := refusal(t, g.Admit(ctx, Claim, 70, netip.Addr{}), ErrLimited); r.Kind != User {
			t.Errorf("refused by %s, want user", r.Kind)
		}
		if err := g.Admit(ctx, Claim, 72, netip.Addr{}); err != nil {
			t.Errorf("another user: %v", err)
		}
	})
}

func TestBlockBounds(t *testing.T) {
	t.Parallel()
	g := newGuard(t, newClient(t, []string{enginetest.RedisAddr(t)}), enginetest.Prefix(t), nil)
	for _, tc := range []struct {
		name   string
		d      time.Duration
		reason string
	}{
		{"too short", 0, "x"},
		{"too long", MaxBlock + time.Second, "x"},
		{"reason too long", time.Second, strings.Repeat("é", MaxReason+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := g.Block(context.Background(), UserSubject(1), tc.d, tc.reason); err == nil {
				t.Error("Block accepted it")
			}
		})
	}
}

// TestListToleratesAFailedBlockWrite: an index entry whose block key was
// never written (the second write of a block failed) is not listed.
func TestListToleratesAFailedBlockWrite(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, rdb redis.UniversalClient, guard func(func(*Config)) *Guard) {
		ctx := context.Background()
		g := guard(nil)
		if err := indexAddScript.Run(ctx, rdb, []string{g.keys.index()}, UserSubject(9).String(), 60000).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := g.Block(ctx, UserSubject(10), time.Minute, "r"); err != nil {
			t.Fatal(err)
		}
		l, err := g.List(ctx)
		if err != nil || len(l) != 1 || l[0].Subject != UserSubject(10) {
			t.Fatalf("list %+v %v", l, err)
		}
		if err := g.Admit(ctx, Claim, 9, netip.Addr{}); err != nil {
			t.Errorf("an entry without a block blocks: %v", err)
		}
	})
}

func TestAutoBlock(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, rdb redis.UniversalClient, guard func(func(*Config)) *Guard) {
		ctx := context.Background()
		placed := map[Who]int{}
		g := guard(func(c *Config) {
			c.Limits = map[Rule]Limit{{Claim, User}: {Rate: 1, Burst: 1}}
			c.AutoBlock = AutoBlock{Trips: 3, Window: time.Minute, For: 2 * time.Second}
			c.OnPlaced = func(w Who) { placed[w]++ }
		})
		// A longer operator block on another user is not replaced.
		if _, err := g.Block(ctx, UserSubject(2), time.Hour, "by hand"); err != nil {
			t.Fatal(err)
		}
		if err := g.Admit(ctx, Claim, 1, netip.Addr{}); err != nil {
			t.Fatal(err)
		}
		for i := range 4 { // 4 trips: more than 3
			refusal(t, g.Admit(ctx, Claim, 1, netip.Addr{}), ErrLimited)
			if i < 3 && placed[Auto] != 0 {
				t.Fatalf("blocked after %d trips", i+1)
			}
		}
		refusal(t, g.Admit(ctx, Claim, 1, netip.Addr{}), ErrBlocked)
		l, err := g.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) != 2 || l[0].Subject != UserSubject(1) || l[0].Who != Auto || l[0].Reason != "auto: rate limit tripped 3 times in 1m0s" {
			t.Fatalf("list %+v", l)
		}
		if n, _ := rdb.Exists(ctx, g.keys.trips(UserSubject(1))).Result(); n != 0 {
			t.Error("the trips counter outlived the block it caused")
		}
		enginetest.Eventually(t, "the automatic block to expire", 20*time.Second, func() bool {
			return !errors.Is(g.Admit(ctx, Claim, 1, netip.Addr{}), ErrBlocked)
		})
		if placed[Auto] != 1 {
			t.Errorf("placed %v", placed)
		}
	})
}

// TestKeysCarryTheirPrefix: every key the guard writes starts with the
// prefix (a limit's with "rate:" before it) and lies on its tag's slot.
func TestKeysCarryTheirPrefix(t *testing.T) {
	t.Parallel()
	k := keys{"p"}
	for _, tc := range []struct{ got, want string }{
		{k.rate(Claim, UserSubject(42)), "p:{p:rl:claim:u:42}"},
		{k.rate(Subscribe, IPSubject(netip.MustParseAddr("2001:db8::1"))), "p:{p:rl:subscribe:ip:2001:db8::1}"},
		{k.trips(IPSubject(ip1)), "p:{p:rl:trips:ip:192.0.2.1}"},
		{k.block(UserSubject(7)), "p:{p:block:u:7}"},
		{k.index(), "p:{p:blocks}"},
	} {
		if tc.got != tc.want {
			t.Errorf("key %q, want %q", tc.got, tc.want)
		}
	}
	for _, s := range []string{"u:7", "ip:2001:db8::1"} {
		if got, ok := parseSubject(s); !ok || got.String() != s {
			t.Errorf("parseSubject(%q) = %v, %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "u:", "ip:", "x:1"} {
		if _, ok := parseSubject(s); ok {
			t.Errorf("parseSubject(%q) accepted", s)
		}
	}
}

// TestConcurrentAdmitsShareNoAnswers floods two guards with concurrent
// Admits, whose checks go to Redis in shared pipelines: each Admit must
// get its own subject's answer. A blocked user's requests are all refused
// as blocked, and a limited user's are admitted exactly up to the limit.
func TestConcurrentAdmitsShareNoAnswers(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, _ redis.UniversalClient, guard func(func(*Config)) *Guard) {
		ctx := context.Background()
		const burst, each = 20, 100
		limits := func(c *Config) { c.Limits = map[Rule]Limit{{Claim, User}: {Rate: 1, Burst: burst}} }
		a, b := guard(limits), guard(limits)
		const limited, blocked = 7, 8
		if _, err := a.Block(ctx, UserSubject(blocked), time.Minute, "test"); err != nil {
			t.Fatal(err)
		}
		type result struct {
			user int64
			err  error
		}
		results := make(chan result, 3*each)
		start := time.Now()
		var wg sync.WaitGroup
		for i := range 3 * each {
			user := []int64{limited, blocked, int64(1000 + i)}[i%3] // the rest: one request each
			g := a
			if i%2 == 1 {
				g = b
			}
			wg.Go(func() { results <- result{user, g.Admit(ctx, Claim, user, ip1)} })
		}
		wg.Wait()
		elapsed := time.Since(start)
		close(results)
		admitted := 0
		for r := range results {
			switch {
			case r.user == blocked:
				refusal(t, r.err, ErrBlocked)
			case r.user == limited && r.err == nil:
				admitted++
			case r.user == limited:
				refusal(t, r.err, ErrLimited)
			case r.err != nil:
				t.Errorf("user %d, alone under its limit: %v", r.user, r.err)
			}
		}
		// GCRA admits the burst and then one a second.
		if most := burst + int(elapsed/time.Second) + 1; admitted < burst || admitted > most {
			t.Errorf("limited user: %d of %d admitted in %v, want %d to %d", admitted, each, elapsed, burst, most)
		}
	})
}
