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

// live returns flags that point run at the shared Consul with this test's
// own prefix and service name, and a client on the same prefix.
func live(t *testing.T) ([]string, *cluster.Client) {
	t.Helper()
	addr, prefix := enginetest.Consul(t), enginetest.Prefix(t)
	c, err := cluster.New(addr, prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return []string{"-consul", addr, "-prefix", prefix, "-service", prefix}, c
}

func (r result) want(t *testing.T, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stdout, stdout) || !strings.Contains(r.stderr, stderr) {
		t.Errorf("exit %d, stdout %q, stderr %q;\nwant exit %d, stdout containing %q, stderr containing %q",
			r.code, r.stdout, r.stderr, code, stdout, stderr)
	}
}

func TestUsage(t *testing.T) {
	parallel(t)
	r := runCLI(t, "help")
	r.want(t, 0, "Usage: scheduler-admin", "")
	for _, cmd := range []string{"queues ", "queues set M", "workers", "user ID", "pause", "resume", "rebuild", "COUPONPUSH_CONSUL_ADDR", "COUPONPUSH_CONSUL_PREFIX"} {
		if !strings.Contains(r.stdout, cmd) {
			t.Errorf("usage lacks %q:\n%s", cmd, r.stdout)
		}
	}
	runCLI(t, "-h").want(t, 0, "Usage:", "")
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
		{"not built yet", []string{"user", "42"}, 1, "user: not implemented yet"},
		{"pause not built", []string{"pause"}, 1, "not implemented yet"},
	}
	dead := deadAddr(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parallel(t)
			// Consul is down: usage errors must be found before it is asked.
			r := runCLI(t, append([]string{"-consul", dead}, tt.args...)...)
			r.want(t, tt.code, "", tt.stderr)
		})
	}
}

func TestConsulDown(t *testing.T) {
	parallel(t)
	dead := deadAddr(t)
	for _, args := range [][]string{{"queues"}, {"queues", "set", "8"}, {"workers"}, {"queues", "--json"}} {
		r := runCLI(t, append([]string{"-consul", dead}, args...)...)
		r.want(t, 1, "", "connection refused")
	}
}

func TestQueues(t *testing.T) {
	parallel(t)
	flags, c := live(t)
	key := c.QueueCountKey()

	runCLI(t, append(flags, "queues")...).want(t, 0, "absent", "")
	var qc queueCount
	r := runCLI(t, append(flags, "queues", "--json")...)
	if err := json.Unmarshal([]byte(r.stdout), &qc); err != nil || r.code != 0 || qc.Found || qc.Key != key {
		t.Fatalf("queues --json on absent key: %+v (%v) from %+v", qc, err, r)
	}

	runCLI(t, append(flags, "queues", "set", "32")...).want(t, 0, key+": absent -> 32", "")
	runCLI(t, append(flags, "queues")...).want(t, 0, "32", "")
	runCLI(t, append(flags, "queues", "set", "32")...).want(t, 0, "already 32", "")
	runCLI(t, append(flags, "queues", "set", "48", "-json")...).want(t, 0, `"from": "32"`, "")
	if n, _, _, err := c.QueueCount(t.Context()); err != nil || n != 48 {
		t.Fatalf("N in Consul = %d, %v; want 48", n, err)
	}
	r = runCLI(t, append(flags, "--json", "queues")...)
	if err := json.Unmarshal([]byte(r.stdout), &qc); err != nil || !qc.Found || qc.Count != 48 || qc.ModifyIndex == 0 {
		t.Fatalf("queues --json: %+v (%v)", qc, err)
	}

	// A bad value: shown, exit 1, and fixable with set.
	putRaw(t, flags[1], key, "zero")
	runCLI(t, append(flags, "queues")...).want(t, 1, "bad value", "queues set M")
	runCLI(t, append(flags, "queues", "set", "4")...).want(t, 0, "bad value -> 4", "")
}

func TestEnvironment(t *testing.T) {
	leakCheck(t) // t.Setenv: not parallel
	flags, c := live(t)
	t.Setenv(envConsulAddr, flags[1])
	t.Setenv(envConsulPrefix, flags[3])
	if ok, err := c.SetQueueCount(t.Context(), 12, 0); err != nil || !ok {
		t.Fatalf("SetQueueCount: %v %v", ok, err)
	}
	runCLI(t, "queues").want(t, 0, "12", "")
	// A flag beats the environment.
	runCLI(t, "-prefix", flags[3]+"_other", "queues").want(t, 0, "absent", "")
	t.Setenv(envConsulAddr, deadAddr(t))
	runCLI(t, "queues").want(t, 1, "", "connection refused")
	runCLI(t, "-consul", flags[1], "queues").want(t, 0, "12", "")
}

func TestWorkers(t *testing.T) {
	parallel(t)
	flags, c := live(t)
	service := flags[5]
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
