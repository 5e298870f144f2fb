package coupon

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/enginetest"
	"couponpush/template"
)

func TestReconcileRepairsDrift(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const deadline = 2 * time.Second
	f := newFixture(t, nil, func(c *Config) { c.ReconcileDeadline = deadline })
	tm := f.liveTemplate(t, 100, 1, 4)
	for u := 1; u <= 30; u++ {
		if _, _, err := f.svc.Claim(ctx, tm.ID, int64(u), rid(u)); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := f.svc.ReconcileTemplate(ctx, tm.ID); err != nil || res.Drift != 0 {
		t.Fatalf("clean books: reconcile %+v, %v", res, err)
	}

	t.Run("lost and extra stock in Redis", func(t *testing.T) {
		f.rdb.HIncrBy(ctx, f.svc.keys.sub(tm.ID, 0), "left", 5)
		f.rdb.HIncrBy(ctx, f.svc.keys.sub(tm.ID, 1), "left", -3)
		res, err := f.svc.ReconcileTemplate(ctx, tm.ID)
		if err != nil {
			t.Fatal(err)
		}
		if res.Drift != 8 || res.Repaired != 8 {
			t.Fatalf("reconcile %+v, want drift 8 repaired 8", res)
		}
		f.checkBooks(t, tm)
	})

	t.Run("stock add committed in MySQL, lost before Redis", func(t *testing.T) {
		// What AddStock leaves when its process dies after the commit.
		if _, _, err := f.store.AddStock(ctx, tm.ID, 20); err != nil {
			t.Fatal(err)
		}
		before, _ := f.svc.Remaining(ctx, tm)
		res, err := f.svc.ReconcileTemplate(ctx, tm.ID)
		if err != nil || res.Drift != 0 {
			t.Fatalf("reconcile %+v, %v", res, err)
		}
		after, _ := f.svc.Remaining(ctx, tm)
		if after != before+20 {
			t.Fatalf("remaining %d → %d, want +20", before, after)
		}
		// Applying it again changes nothing.
		if _, err := f.db.Exec("UPDATE stock_adds SET applied = 0 WHERE template_id = ?", tm.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.ReconcileTemplate(ctx, tm.ID); err != nil {
			t.Fatal(err)
		}
		if again, _ := f.svc.Remaining(ctx, tm); again != after {
			t.Fatalf("re-applied adds moved remaining %d → %d", after, again)
		}
		f.checkBooks(t, tm)
	})

	t.Run("claims stopped between steps", func(t *testing.T) {
		// Three claims whose process died: after the reservation only,
		// after taking stock, and after the MySQL commit.
		stopped := func(user int64, id string) *claim {
			cur, err := f.store.Get(ctx, tm.ID)
			if err != nil {
				t.Fatal(err)
			}
			c := &claim{template: cur, user: user, requestID: id, started: time.Now(), claimedAt: norm(time.Now())}
			c.expiresAt = c.claimedAt.Add(time.Hour)
			res, err := reserveScript.Run(ctx, f.rdb, []string{f.svc.keys.user(tm.ID, user)}, id, 1, time.Now().Add(time.Hour).UnixMilli()).StringSlice()
			if err != nil || res[0] != "new" {
				t.Fatalf("reserve: %v %v", res, err)
			}
			c.resv, _ = parseReservation("p|" + res[1] + "|" + res[2])
			return c
		}
		made := time.Now()
		stopped(101, "reserved-only")
		taken := stopped(102, "taken")
		if err := f.svc.take(ctx, taken); err != nil {
			t.Fatal(err)
		}
		written := stopped(103, "written")
		if err := f.svc.take(ctx, written); err != nil {
			t.Fatal(err)
		}
		if r := f.svc.writer.insert(ctx, []*claim{written})[0]; r.err != nil {
			t.Fatal(r.err)
		}
		if n := f.holds(t, tm); n != 2 {
			t.Fatalf("%d holds, want 2", n)
		}
		// While young they are in flight, not drift.
		res, err := f.svc.ReconcileTemplate(ctx, tm.ID)
		if young := time.Since(made) < deadline; err != nil || res.Drift != 0 || (young && res.Settled != 0) {
			t.Fatalf("reconcile of young claims: %+v, %v", res, err)
		}
		enginetest.Eventually(t, "both holds settled", 10*time.Second, func() bool {
			res, err := f.svc.ReconcileTemplate(ctx, tm.ID)
			return err == nil && res.Drift == 0 && f.holds(t, tm) == 0
		})
		// The written claim is issued; the others were given back, and
		// their users can claim again with the same request_id (the
		// reservation-only one is settled by the retry itself).
		for _, c := range []struct {
			user    int64
			id      string
			created bool
		}{{101, "reserved-only", true}, {102, "taken", true}, {103, "written", false}} {
			cp, created, err := f.svc.Claim(ctx, tm.ID, c.user, c.id)
			if err != nil || created != c.created || cp.UserID != c.user {
				t.Fatalf("claim %s again: %+v created %v, %v; want created %v", c.id, cp, created, err, c.created)
			}
		}
		f.checkBooks(t, tm)
	})
}

// TestClaimOnRedisCluster: sub-stocks land on different slots of a real
// 3-master Redis Cluster, and claims there keep C1.
func TestClaimOnRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := newRedisClient(t, enginetest.RedisCluster(t)...)
	f := newFixture(t, rdb)
	tm := f.liveTemplate(t, 300, 1, 8)
	slots := map[int64]bool{}
	masters := map[string]bool{}
	cc := rdb.(*redis.ClusterClient)
	for i := range tm.SubStocks {
		key := f.svc.keys.sub(tm.ID, i)
		slot, err := rdb.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		slots[slot] = true
		m, err := cc.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Options().Addr] = true
	}
	if len(slots) != tm.SubStocks || len(masters) < 2 {
		t.Fatalf("%d sub-stocks on %d slots and %d masters", tm.SubStocks, len(slots), len(masters))
	}
	var wg sync.WaitGroup
	var ok, sold atomic.Int64
	for u := 1; u <= 600; u++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := f.svc.Claim(ctx, tm.ID, int64(u), rid(u))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrSoldOut):
				sold.Add(1)
			default:
				t.Errorf("claim: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 300 || sold.Load() != 300 {
		t.Fatalf("issued %d, sold out %d; want 300 and 300", ok.Load(), sold.Load())
	}
	f.checkBooks(t, tm)
}

// Environment of the claim child process (TestClaimChildProcess).
const (
	childEnv         = "COUPONPUSH_CLAIM_CHILD"
	childDSNEnv      = "COUPONPUSH_CLAIM_CHILD_DSN"
	childRedisEnv    = "COUPONPUSH_CLAIM_CHILD_REDIS"
	childPrefixEnv   = "COUPONPUSH_CLAIM_CHILD_PREFIX"
	childTemplateEnv = "COUPONPUSH_CLAIM_CHILD_TEMPLATE"
)

// TestClaimChildProcess is not a test on its own: TestKillMidClaims runs
// the test binary with it selected, and kills that process mid-claims.
func TestClaimChildProcess(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("the child process of TestKillMidClaims")
	}
	db, err := sql.Open("mysql", os.Getenv(childDSNEnv))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv(childRedisEnv), PoolSize: 64})
	store, err := template.NewStore(db, template.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := template.NewCache(store, template.CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(Config{DB: db, Redis: rdb, Prefix: os.Getenv(childPrefixEnv), Templates: cache})
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := strconv.ParseInt(os.Getenv(childTemplateEnv), 10, 64)
	var next atomic.Int64
	var out sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Minute) // if the parent never kills it
	for range 48 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				u := next.Add(1)
				c, _, err := svc.Claim(context.Background(), tid, u, rid(u))
				out.Lock()
				if err != nil {
					fmt.Fprintf(w, "err %d %v\n", u, err)
				} else {
					fmt.Fprintf(w, "ok %d %d\n", u, c.ID)
				}
				w.Flush()
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestKillMidClaims: a process claiming from 48 goroutines is SIGKILLed;
// reconcile then settles what it left in flight, ends with zero drift, and
// every user it served can retry: the answered coupons are all in MySQL.
func TestKillMidClaims(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil, func(c *Config) { c.ReconcileDeadline = time.Second })
	tm := f.liveTemplate(t, 100_000, 1, 8)

	cmd := exec.Command(os.Args[0], "-test.run=^TestClaimChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1", childDSNEnv+"="+f.dsn, childRedisEnv+"="+enginetest.RedisAddr(t),
		childPrefixEnv+"="+f.prefix, childTemplateEnv+"="+strconv.FormatInt(tm.ID, 10))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	answered := map[int64]int64{} // user → coupon
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && len(answered) < 400 {
		var u, id int64
		if n, _ := fmt.Sscanf(sc.Text(), "ok %d %d", &u, &id); n == 2 {
			answered[u] = id
		} else {
			t.Errorf("child: %s", sc.Text())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
	}
	_ = cmd.Wait()
	if len(answered) < 400 {
		t.Fatalf("child answered only %d claims before it ended", len(answered))
	}
	var maxUser int64
	for u := range answered {
		maxUser = max(maxUser, u)
	}
	t.Logf("killed after %d answered claims; %d rows in MySQL, %d holds in flight", len(answered), f.issued(t, tm.ID), f.holds(t, tm))

	enginetest.Eventually(t, "reconcile settles the dead process's claims", 15*time.Second, func() bool {
		res, err := f.svc.ReconcileTemplate(ctx, tm.ID)
		if err != nil {
			t.Logf("reconcile: %v", err)
		}
		return err == nil && res.Drift == 0 && f.holds(t, tm) == 0
	})
	f.checkBooks(t, tm)
	// Every answered claim is durable, and a retry of any user's request
	// returns that coupon or issues it now.
	for u := int64(1); u <= maxUser+64; u++ {
		var (
			c       Coupon
			created bool
			err     error
		)
		// A reservation the child made just before it died, with no stock
		// taken yet, is settled by this retry once the deadline passed.
		enginetest.Eventually(t, fmt.Sprintf("retry of user %d settled", u), 10*time.Second, func() bool {
			c, created, err = f.svc.Claim(ctx, tm.ID, u, rid(u))
			return !errors.Is(err, ErrClaimInProgress)
		})
		if err != nil {
			t.Fatalf("retry of user %d: %v", u, err)
		}
		if id, ok := answered[u]; ok && (created || c.ID != id) {
			t.Fatalf("retry of user %d: coupon %d created %v, was answered %d", u, c.ID, created, id)
		}
	}
	if m := f.maxPerUser(t, tm.ID); m != 1 {
		t.Fatalf("a user holds %d coupons", m)
	}
	f.checkBooks(t, tm)
}
