package enginetest_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	consul "github.com/hashicorp/consul/api"
	"github.com/nsqio/go-nsq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"couponpush/internal/enginetest"
)

// The package's own tests must leave nothing running: MainNoLeaks checks.
func TestMain(m *testing.M) { enginetest.MainNoLeaks(m) }

// TestMainNoLeaksFailsOnLeak runs this test binary again with one test that
// leaves a goroutine behind, and wants MainNoLeaks to fail it.
func TestMainNoLeaksFailsOnLeak(t *testing.T) {
	if os.Getenv("ENGINETEST_LEAK") == "1" {
		return // the child's run of this test; TestLeaky leaks
	}
	t.Parallel()
	cmd := exec.CommandContext(ctx(t), os.Args[0], "-test.run=^(TestLeaky|TestMainNoLeaksFailsOnLeak)$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ENGINETEST_LEAK=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "MainNoLeaks: goroutines still running") {
		t.Fatalf("a leaking test binary: err = %v, output:\n%s\nwant a failure naming the leak", err, out)
	}
}

func TestLeaky(t *testing.T) {
	if os.Getenv("ENGINETEST_LEAK") != "1" {
		t.Skip("only in TestMainNoLeaksFailsOnLeak's child")
	}
	enginetest.RedisAddr(t) // an engine to stop too
	block := make(chan struct{})
	go func() { <-block }()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestPrefix(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,32}$`)
	p := enginetest.Prefix(t)
	if !valid.MatchString(p) {
		t.Errorf("Prefix = %q, want letters, digits and '_', starting with a letter, ≤ 33 long", p)
	}
	if again := enginetest.Prefix(t); again != p {
		t.Errorf("second Prefix in one test = %q, want %q", again, p)
	}
	seen := map[string]bool{p: true}
	for _, name := range []string{"sub/test", "9 starts with a digit", "!!!", strings.Repeat("long", 30)} {
		t.Run(name, func(t *testing.T) {
			q := enginetest.Prefix(t)
			if !valid.MatchString(q) {
				t.Errorf("Prefix = %q, want letters, digits and '_', starting with a letter, ≤ 33 long", q)
			}
			if seen[q] {
				t.Errorf("Prefix %q handed out twice", q)
			}
			seen[q] = true
		})
	}
}

func TestRedis(t *testing.T) {
	defer goleak.VerifyNone(t)
	c := enginetest.Redis(t)
	key := enginetest.Prefix(t) + ":k"
	if err := c.Set(ctx(t), key, "v", time.Minute).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Get(ctx(t), key).Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want v", got, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStartRedisRestart(t *testing.T) {
	t.Parallel()
	p := enginetest.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	addr := p.Addr
	c := redis.NewClient(&redis.Options{Addr: p.Addr, MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx(t), "k", "kept", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	p.Stop(t)
	if p.Running() {
		t.Fatal("Running after Stop")
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after Stop", addr)
	}
	p.Restart(t)
	if p.Addr != addr {
		t.Fatalf("Restart moved Redis from %s to %s", addr, p.Addr)
	}
	if got, err := c.Get(ctx(t), "k").Result(); err != nil || got != "kept" {
		t.Fatalf("GET after Restart = %q, %v; want the AOF to bring back kept", got, err)
	}

	// appendfsync always: a write acknowledged before SIGKILL survives it.
	if err := c.Set(ctx(t), "k2", "acked", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	p.Kill(t)
	p.Restart(t)
	if got, err := c.Get(ctx(t), "k2").Result(); err != nil || got != "acked" {
		t.Fatalf("GET after Kill and Restart = %q, %v; want acked", got, err)
	}
}

func TestRedisCluster(t *testing.T) {
	t.Parallel()
	addrs := enginetest.RedisCluster(t)
	if len(addrs) != 3 {
		t.Fatalf("RedisCluster returned %d addresses, want 3", len(addrs))
	}
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
	defer c.Close()
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("NewUniversalClient made a %T, want a *redis.ClusterClient", c)
	}
	// One key on each master's slots: tag a, b, c hash to slots 15495, 3300, 7365.
	owners := map[string]bool{}
	for _, tag := range []string{"a", "b", "c"} {
		key := fmt.Sprintf("%s:{%s}", enginetest.Prefix(t), tag)
		if err := cc.Set(ctx(t), key, tag, time.Minute).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		if got, err := cc.Get(ctx(t), key).Result(); err != nil || got != tag {
			t.Fatalf("GET %s = %q, %v; want %q", key, got, err, tag)
		}
		node, err := cc.MasterForKey(ctx(t), key)
		if err != nil {
			t.Fatalf("MasterForKey %s: %v", key, err)
		}
		owners[node.Options().Addr] = true
	}
	if len(owners) != 3 {
		t.Errorf("keys on three slots landed on masters %v, want three different masters", owners)
	}
	if again := enginetest.RedisCluster(t); strings.Join(again, ",") != strings.Join(addrs, ",") {
		t.Errorf("second RedisCluster = %v, want the shared %v", again, addrs)
	}
}

func TestMySQL(t *testing.T) {
	t.Parallel()
	var dsn string
	t.Run("fresh database", func(t *testing.T) {
		dsn = enginetest.MySQL(t)
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if !cfg.ParseTime || cfg.Loc != time.UTC || cfg.MultiStatements || cfg.DBName == "" {
			t.Errorf("DSN %q: want parseTime, loc=UTC, no multiStatements and a database", dsn)
		}
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.PingContext(ctx(t)); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		var n int
		if err := db.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&n); err != nil || n != 0 {
			t.Fatalf("tables in the fresh database = %d, %v; want 0", n, err)
		}
		if _, err := db.ExecContext(ctx(t), "CREATE TABLE t (id BIGINT PRIMARY KEY, at DATETIME(3) NOT NULL) ENGINE=InnoDB"); err != nil {
			t.Fatalf("CREATE TABLE: %v", err)
		}
		at := time.Date(2026, 11, 23, 10, 0, 0, 123e6, time.UTC)
		if _, err := db.ExecContext(ctx(t), "INSERT INTO t VALUES (1, ?)", at); err != nil {
			t.Fatalf("INSERT: %v", err)
		}
		var got time.Time
		if err := db.QueryRowContext(ctx(t), "SELECT at FROM t WHERE id = 1").Scan(&got); err != nil || !got.Equal(at) {
			t.Fatalf("SELECT at = %v, %v; want %v", got, err, at)
		}
		var flush, conns int
		if err := db.QueryRowContext(ctx(t), "SELECT @@innodb_flush_log_at_trx_commit, @@max_connections").Scan(&flush, &conns); err != nil {
			t.Fatal(err)
		}
		if flush != 1 || conns < 500 {
			t.Errorf("innodb_flush_log_at_trx_commit = %d, max_connections = %d; want 1 and ≥ 500", flush, conns)
		}
		if other := enginetest.MySQL(t); other == dsn {
			t.Errorf("second MySQL in one test returned the same DSN %q", dsn)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	})
	// The subtest's cleanup dropped its database.
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := cfg.DBName
	cfg.DBName = ""
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE ?", name+"%").Scan(&n); err != nil || n != 0 {
		t.Errorf("databases named %s* after the test = %d, %v; want 0", name, n, err)
	}
}

// nsqRoundTrip publishes one message to a fresh topic on the nsqd at
// tcpAddr (unless body is empty) and consumes one message, returning it.
func nsqConsume(t *testing.T, tcpAddr, topic string) string {
	t.Helper()
	cfg := nsq.NewConfig()
	cfg.LookupdPollInterval = time.Second
	cons, err := nsq.NewConsumer(topic, "ch", cfg)
	if err != nil {
		t.Fatal(err)
	}
	cons.SetLogger(nil, nsq.LogLevelError)
	got := make(chan string, 1)
	cons.AddHandler(nsq.HandlerFunc(func(m *nsq.Message) error {
		select {
		case got <- string(m.Body):
		default:
		}
		return nil
	}))
	if err := cons.ConnectToNSQD(tcpAddr); err != nil {
		t.Fatalf("consumer ConnectToNSQD %s: %v", tcpAddr, err)
	}
	defer func() {
		cons.Stop()
		<-cons.StopChan
	}()
	select {
	case b := <-got:
		return b
	case <-time.After(30 * time.Second):
		t.Fatalf("no message on topic %s within 30s", topic)
		return ""
	}
}

func nsqPublish(t *testing.T, tcpAddr, topic, body string) {
	t.Helper()
	prod, err := nsq.NewProducer(tcpAddr, nsq.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	prod.SetLogger(nil, nsq.LogLevelError)
	defer prod.Stop()
	if err := prod.Publish(topic, []byte(body)); err != nil {
		t.Fatalf("publish to %s on %s: %v", topic, tcpAddr, err)
	}
}

func TestNSQD(t *testing.T) {
	defer goleak.VerifyNone(t)
	tcp, web := enginetest.NSQD(t)
	if tcp == "" || web == "" || tcp == web {
		t.Fatalf("NSQD = %q, %q; want two addresses", tcp, web)
	}
	topic := enginetest.Prefix(t)
	nsqPublish(t, tcp, topic, "hello")
	if got := nsqConsume(t, tcp, topic); got != "hello" {
		t.Fatalf("consumed %q, want hello", got)
	}
}

func TestStartNSQDRestart(t *testing.T) {
	t.Parallel()
	p := enginetest.StartNSQD(t)
	if p.HTTPAddr == "" {
		t.Fatal("StartNSQD: no HTTPAddr")
	}
	addr, web := p.Addr, p.HTTPAddr
	topic := enginetest.Prefix(t)
	nsqPublish(t, p.Addr, topic, "kept over a restart")
	p.Restart(t)
	if p.Addr != addr || p.HTTPAddr != web {
		t.Fatalf("Restart moved nsqd from %s/%s to %s/%s", addr, web, p.Addr, p.HTTPAddr)
	}
	if got := nsqConsume(t, p.Addr, topic); got != "kept over a restart" {
		t.Fatalf("consumed %q after Restart, want the message published before it", got)
	}
}

// consulClient returns a client whose connections close with the test, so
// that goleak in later tests of the binary does not see them.
func consulClient(t *testing.T, addr string) (*consul.Client, error) {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return consul.NewClient(&consul.Config{Address: addr, HttpClient: &http.Client{Transport: tr}})
}

func TestConsul(t *testing.T) {
	t.Parallel()
	c, err := consulClient(t, enginetest.Consul(t))
	if err != nil {
		t.Fatal(err)
	}
	key := enginetest.Prefix(t) + "/n"
	if _, err := c.KV().Put(&consul.KVPair{Key: key, Value: []byte("4")}, nil); err != nil {
		t.Fatalf("KV put: %v", err)
	}
	kv, _, err := c.KV().Get(key, nil)
	if err != nil || kv == nil || string(kv.Value) != "4" {
		t.Fatalf("KV get = %v, %v; want 4", kv, err)
	}
}

func TestStartConsul(t *testing.T) {
	t.Parallel()
	p := enginetest.StartConsul(t)
	if p.Addr == enginetest.Consul(t) {
		t.Fatalf("StartConsul shares the address %s of the shared agent", p.Addr)
	}
	c, err := consulClient(t, p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.KV().Put(&consul.KVPair{Key: "k", Value: []byte("v")}, nil); err != nil {
		t.Fatalf("KV put: %v", err)
	}
	p.Stop(t)
	if _, _, err := c.KV().Get("k", nil); err == nil {
		t.Fatal("KV get succeeded on a stopped agent")
	}
	p.Restart(t)
	if _, err := c.KV().Put(&consul.KVPair{Key: "k", Value: []byte("v")}, nil); err != nil {
		t.Fatalf("KV put after Restart: %v", err)
	}
}

func TestBin(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"nsqd", "consul", "redis-server", "mariadbd"} {
		t.Run(name, func(t *testing.T) {
			if p := enginetest.Bin(t, name); !strings.Contains(p, name) {
				t.Errorf("Bin(%s) = %s", name, p)
			}
		})
	}
}

// TestStartMySQLFreeze starts a private MariaDB beside the shared one,
// freezes it (a query then waits for its context, with the connection
// open), thaws it (the same pool works again), and stops it frozen.
func TestStartMySQLFreeze(t *testing.T) {
	t.Parallel()
	p, dsn := enginetest.StartMySQL(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := mysql.ParseDSN(enginetest.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != p.Addr || cfg.Addr == shared.Addr || cfg.DBName == "" || !cfg.ParseTime {
		t.Fatalf("StartMySQL DSN %q: want a database on %s, not on the shared %s", dsn, p.Addr, shared.Addr)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx(t), "CREATE TABLE t (id BIGINT PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		t.Fatalf("CREATE TABLE: %v", err)
	}

	p.Freeze(t)
	qctx, cancel := context.WithTimeout(ctx(t), 300*time.Millisecond)
	_, err = db.ExecContext(qctx, "INSERT INTO t VALUES (1)")
	cancel()
	if err == nil {
		t.Fatal("INSERT on a frozen server succeeded")
	}
	if !p.Running() {
		t.Fatal("a frozen server does not count as running")
	}
	p.Thaw(t)
	p.Thaw(t) // a second Thaw does nothing
	var n int
	if err := db.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM t WHERE id = 2").Scan(&n); err != nil || n != 0 {
		t.Fatalf("SELECT after Thaw = %d, %v; want 0 rows and no error", n, err)
	}
	if _, err := db.ExecContext(ctx(t), "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatalf("INSERT after Thaw: %v", err)
	}

	p.Freeze(t)
	p.Stop(t) // SIGTERM reaches a frozen server once Stop thaws it
	if p.Running() {
		t.Fatal("Running after Stop")
	}
}
