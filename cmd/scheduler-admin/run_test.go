package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"

	"couponpush/cluster"
	"couponpush/internal/enginetest"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

var leakChecked atomic.Int32

// parallel registers t with leakCheck and marks it parallel; every test
// calls it (or leakCheck) first.
func parallel(t *testing.T) {
	leakCheck(t)
	t.Parallel()
}

// leakCheck registers t; when the last registered test ends, goleak checks
// that no goroutine is left. (enginetest.Main owns TestMain's exit, so
// goleak.VerifyTestMain cannot be used; counting keeps parallel tests from
// seeing each other's goroutines.)
func leakCheck(t *testing.T) {
	leakChecked.Add(1)
	t.Cleanup(func() {
		if leakChecked.Add(-1) == 0 {
			goleak.VerifyNone(t, goleak.IgnoreTopFunction("testing.tRunner.func1"))
		}
	})
}

// result is what one run() did.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI calls run with args and returns its exit code and output.
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, args, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func (r result) want(t *testing.T, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stdout, stdout) || !strings.Contains(r.stderr, stderr) {
		t.Errorf("exit %d, stdout %q, stderr %q;\nwant exit %d, stdout containing %q, stderr containing %q",
			r.code, r.stdout, r.stderr, code, stdout, stderr)
	}
}

func TestUsage(t *testing.T) {
	leakCheck(t) // t.Setenv: not parallel
	r := runCLI(t, "help")
	r.want(t, 0, "Usage: scheduler-admin", "")
	for _, cmd := range []string{"queues ", "queues set M", "workers", "user ID", "pause", "resume", "rebuild",
		"COUPONPUSH_CONSUL_ADDR", "COUPONPUSH_CONSUL_PREFIX", "COUPONPUSH_REDIS_ADDR", "COUPONPUSH_REDIS_PREFIX", "COUPONPUSH_MYSQL_DSN",
		"-wait-timeout", "-json", "-queues", "-batch", "Exit status"} {
		if !strings.Contains(r.stdout, cmd) {
			t.Errorf("usage lacks %q:\n%s", cmd, r.stdout)
		}
	}
	runCLI(t, "-h").want(t, 0, "Usage:", "")
	// A DSN may hold a password: the usage never shows the one from the environment.
	t.Setenv(envMySQLDSN, "root:s3cret@tcp(127.0.0.1:3306)/x")
	if r := runCLI(t, "help"); strings.Contains(r.stdout, "s3cret") {
		t.Errorf("usage shows the MySQL DSN:\n%s", r.stdout)
	}
}

func TestBadUsage(t *testing.T) {
	parallel(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no command", nil, 2, "Usage:"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown flag", []string{"-nope", "queues"}, 2, "flag provided but not defined"},
		{"bad timeout", []string{"-timeout", "0s", "queues"}, 2, "-timeout must be positive"},
		{"set without M", []string{"queues", "set"}, 2, "one argument"},
		{"set two args", []string{"queues", "set", "3", "4"}, 2, "one argument"},
		{"set zero", []string{"queues", "set", "0"}, 2, "below 1"},
		{"set negative", []string{"queues", "set", "--", "-3"}, 2, "not a decimal integer"},
		{"set too big", []string{"queues", "set", "65537"}, 2, "above 65536"},
		{"set garbage", []string{"queues", "set", "abc"}, 2, "not a decimal integer"},
		{"queues extra", []string{"queues", "list"}, 2, `unexpected argument "list"`},
		{"workers extra", []string{"workers", "all"}, 2, "takes no arguments"},
		{"user without ID", []string{"user"}, 2, "one argument"},
		{"user two IDs", []string{"user", "1", "2"}, 2, "one argument"},
		{"user zero", []string{"user", "0"}, 2, `user ID "0" is not a positive`},
		{"user negative", []string{"user", "--", "-5"}, 2, "not a positive"},
		{"user not a number", []string{"user", "bob"}, 2, "not a positive"},
		{"user overflow", []string{"user", "9223372036854775808"}, 2, "not a positive"},
		{"pause extra", []string{"pause", "now"}, 2, "pause takes no arguments"},
		{"resume extra", []string{"resume", "now"}, 2, "resume takes no arguments"},
		{"rebuild extra", []string{"rebuild", "all"}, 2, "rebuild takes no arguments"},
		{"bad batch", []string{"-batch", "0", "rebuild"}, 2, "-batch must be"},
		{"bad queues flag", []string{"-queues", "65537", "rebuild"}, 2, "-queues must be"},
		{"bad wait timeout", []string{"-wait-timeout", "-1s", "queues", "set", "3"}, 2, "-wait-timeout must be positive"},
		{"braces in redis prefix", []string{"-redis-prefix", "a{b}", "pause"}, 2, "braces"},
		{"no redis address", []string{"-redis=", "pause"}, 2, "no Redis address"},
		{"no mysql dsn", []string{"-mysql=", "user", "1"}, 2, "no MySQL DSN"},
		{"mysql dsn without database", []string{"-mysql", "root@tcp(127.0.0.1:1)/", "user", "1"}, 2, "names no database"},
		{"bad mysql dsn", []string{"-mysql", "no-slash", "rebuild"}, 2, "bad -mysql DSN"},
	}
	dead := deadAddr(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parallel(t)
			// Every engine is down: usage errors must be found before one is asked.
			r := runCLI(t, append([]string{"-consul", dead, "-redis", dead, "-mysql", "root@tcp(" + dead + ")/db"}, tt.args...)...)
			r.want(t, tt.code, "", tt.stderr)
		})
	}
}

func TestConsulDown(t *testing.T) {
	parallel(t)
	e := newEngines(t)
	dead := deadAddr(t)
	for _, args := range [][]string{{"queues"}, {"queues", "set", "8"}, {"queues", "set", "8", "-wait=false"}, {"workers"}, {"queues", "--json"}} {
		r := runCLI(t, append(e.flags("-consul", dead), args...)...)
		r.want(t, 1, "", "connection refused")
		r.want(t, 1, "", dead)
	}
	// user and rebuild ask Consul only while no layout is recorded and no -queues is given.
	r := runCLI(t, append(e.flags("-consul", dead), "user", "7")...)
	r.want(t, 1, "", "connection refused")
	runCLI(t, append(e.flags("-consul", dead, "-queues", "4"), "user", "7")...).want(t, 0, "no reminders", "")
	runCLI(t, append(e.flags("-consul", dead, "-queues", "4"), "rebuild")...).want(t, 0, "rebuild done", "")
}

func TestRedisDown(t *testing.T) {
	parallel(t)
	e := newEngines(t)
	dead := deadAddr(t)
	for _, args := range [][]string{{"queues"}, {"queues", "set", "8"}, {"user", "1"}, {"pause"}, {"resume"}, {"rebuild"}, {"queues", "-json"}} {
		t0 := time.Now()
		r := runCLI(t, append(e.flags("-redis", dead), args...)...)
		r.want(t, 1, "", "redis "+dead+" unreachable")
		if d := time.Since(t0); d > 5*time.Second {
			t.Errorf("%v with Redis down took %v; want a fast failure", args, d)
		}
		if strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: want one line on stderr, got %q", args, r.stderr)
		}
	}
	// A failed dial never reaches Consul: queues set writes nothing while Redis, which it watches, is down.
	if _, _, found, err := e.consul.QueueCount(t.Context()); err != nil || found {
		t.Fatalf("queues set wrote N with Redis down: found=%v err=%v", found, err)
	}
	// Commands that need no Redis do not ask for it.
	runCLI(t, append(e.flags("-redis", dead), "workers")...).want(t, 0, "no workers", "")
	runCLI(t, append(e.flags("-redis", dead), "queues", "set", "3", "-wait=false")...).want(t, 0, "absent -> 3", "")
}

func TestMySQLDown(t *testing.T) {
	parallel(t)
	e := newEngines(t)
	dsn := "root@tcp(" + deadAddr(t) + ")/couponpush"
	for _, args := range [][]string{{"user", "1"}, {"rebuild"}, {"rebuild", "-json"}} {
		t0 := time.Now()
		r := runCLI(t, append(e.flags("-mysql", dsn), args...)...)
		r.want(t, 1, "", "mysql 127.0.0.1:")
		r.want(t, 1, "", "unreachable")
		if d := time.Since(t0); d > 5*time.Second {
			t.Errorf("%v with MySQL down took %v; want a fast failure", args, d)
		}
	}
	// pause and queues need no MySQL.
	runCLI(t, append(e.flags("-mysql", dsn), "pause")...).want(t, 0, "paused", "")
	runCLI(t, append(e.flags("-mysql", dsn), "queues")...).want(t, 0, "paused: yes", "")
}

func TestQueuesConsulKey(t *testing.T) {
	parallel(t)
	e := newEngines(t)
	flags, c := e.flags(), e.consul
	key := c.QueueCountKey()

	runCLI(t, append(flags, "queues")...).want(t, 0, "absent", "")
	var qc queueCount
	r := runCLI(t, append(flags, "queues", "--json")...)
	if err := json.Unmarshal([]byte(r.stdout), &qc); err != nil || r.code != 0 || qc.Found || qc.Key != key {
		t.Fatalf("queues --json on absent key: %+v (%v) from %+v", qc, err, r)
	}

	runCLI(t, append(flags, "queues", "set", "32", "-wait=false")...).want(t, 0, key+": absent -> 32", "")
	runCLI(t, append(flags, "queues")...).want(t, 0, "32", "")
	runCLI(t, append(flags, "queues", "set", "32", "-wait=false")...).want(t, 0, "already 32", "")
	runCLI(t, append(flags, "queues", "set", "48", "-json", "-wait=false")...).want(t, 0, `"from": "32"`, "")
	if n, _, _, err := c.QueueCount(t.Context()); err != nil || n != 48 {
		t.Fatalf("N in Consul = %d, %v; want 48", n, err)
	}
	r = runCLI(t, append(flags, "--json", "queues")...)
	if err := json.Unmarshal([]byte(r.stdout), &qc); err != nil || !qc.Found || qc.Count != 48 || qc.ModifyIndex == 0 {
		t.Fatalf("queues --json: %+v (%v)", qc, err)
	}

	// A bad value: shown, exit 1, and fixable with set.
	putRaw(t, e.consulAddr, key, "zero")
	runCLI(t, append(flags, "queues")...).want(t, 1, "bad value", "queues set M")
	runCLI(t, append(flags, "queues", "set", "4", "-wait=false")...).want(t, 0, "bad value -> 4", "")
}

func TestEnvironment(t *testing.T) {
	leakCheck(t) // t.Setenv: not parallel
	e := newEngines(t)
	t.Setenv(envConsulAddr, e.consulAddr)
	t.Setenv(envConsulPrefix, e.prefix)
	t.Setenv(envRedisAddr, e.redisAddr)
	t.Setenv(envRedisPrefix, e.prefix)
	t.Setenv(envMySQLDSN, e.dsn)
	if ok, err := e.consul.SetQueueCount(t.Context(), 12, 0); err != nil || !ok {
		t.Fatalf("SetQueueCount: %v %v", ok, err)
	}
	runCLI(t, "queues").want(t, 0, "12", "")
	runCLI(t, "user", "5").want(t, 0, "layout: none recorded in Redis; 12 queues assumed", "")
	runCLI(t, "pause").want(t, 0, "paused", "")
	if p, err := e.queue.Paused(t.Context()); err != nil || !p {
		t.Fatalf("pause through the environment's prefix: paused=%v err=%v", p, err)
	}
	// A flag beats the environment.
	runCLI(t, "-prefix", e.prefix+"_other", "queues").want(t, 0, "absent", "")
	runCLI(t, "-redis-prefix", e.prefix+"_other", "queues").want(t, 0, "paused: no", "")
	t.Setenv(envConsulAddr, deadAddr(t))
	runCLI(t, "queues").want(t, 1, "", "connection refused")
	runCLI(t, "-consul", e.consulAddr, "queues").want(t, 0, "12", "")
	t.Setenv(envRedisAddr, deadAddr(t))
	runCLI(t, "-consul", e.consulAddr, "queues").want(t, 1, "", "redis 127.0.0.1:")
	runCLI(t, "-consul", e.consulAddr, "-redis", e.redisAddr, "queues").want(t, 0, "12", "")
	t.Setenv(envMySQLDSN, "root@tcp("+deadAddr(t)+")/x")
	runCLI(t, "-redis", e.redisAddr, "user", "5").want(t, 1, "", "mysql 127.0.0.1:")
	runCLI(t, "-consul", e.consulAddr, "-redis", e.redisAddr, "-mysql", e.dsn, "user", "5").want(t, 0, "no reminders", "")
}

func TestWorkers(t *testing.T) {
	parallel(t)
	e := newEngines(t)
	flags, c, service := e.flags(), e.consul, e.prefix
	runCLI(t, append(flags, "workers")...).want(t, 0, "no workers", "")
	runCLI(t, append(flags, "workers", "--json")...).want(t, 0, "[]", "")

	reg := c.Register(cluster.Service{ID: service + "-a", Name: service, Address: "127.0.0.1", Port: 8081,
		Meta: map[string]string{"roles": "api", "version": "dev"}}, nil)
	if err := reg.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer reg.Stop()

	deadline := time.Now().Add(20 * time.Second)
	var r result
	for {
		r = runCLI(t, append(flags, "workers")...)
		if strings.Contains(r.stdout, "passing") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.want(t, 0, service+"-a", "")
	for _, s := range []string{"127.0.0.1:8081", "passing", "roles=api version=dev", "ID", "STATUS"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("workers table lacks %q:\n%s", s, r.stdout)
		}
	}

	r = runCLI(t, append(flags, "workers", "--json")...)
	var ws []workerJSON
	if err := json.Unmarshal([]byte(r.stdout), &ws); err != nil || r.code != 0 {
		t.Fatalf("workers --json: %v, %+v", err, r)
	}
	if len(ws) != 1 || ws[0].ID != service+"-a" || ws[0].Status != "passing" || ws[0].Port != 8081 || ws[0].Meta["version"] != "dev" {
		t.Errorf("workers --json = %+v", ws)
	}
}

// putRaw writes a raw KV value, bypassing the validation of cluster.
func putRaw(t *testing.T, addr, key, value string) {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Transport.CloseIdleConnections()
	if _, err := c.KV().Put(&api.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
		t.Fatal(err)
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
