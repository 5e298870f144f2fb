package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const examplePath = "../configs/worker.example.json"

// env returns a getenv backed by a map.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestExampleConfigLoadsAndValidates(t *testing.T) {
	w, err := LoadWorker([]string{"-config", examplePath}, env(nil))
	if err != nil {
		t.Fatalf("LoadWorker(example): %v", err)
	}
	if w.WorkerID == "" {
		t.Error("WorkerID not defaulted")
	}

	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	// Every field of Worker is in the example, so it documents them all.
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		t.Fatal(err)
	}
	for _, f := range leafFields() {
		tag := strings.Split(f.Tag.Get("json"), ",")[0]
		if _, ok := keys[tag]; !ok {
			t.Errorf("example lacks field %q (%s)", tag, f.Name)
		}
	}
	if len(keys) != len(leafFields()) {
		t.Errorf("example has %d keys, Worker has %d fields", len(keys), len(leafFields()))
	}
	// And it shows the defaults: applying them changes nothing but WorkerID.
	file, err := decodeWorker(data)
	if err != nil {
		t.Fatal(err)
	}
	def := file.WithDefaults()
	def.WorkerID = file.WorkerID
	if !reflect.DeepEqual(file, def) {
		t.Errorf("example differs from the defaults:\nfile %+v\ndef  %+v", file, def)
	}
}

// leafFields are Worker's fields with those of embedded structs (Engines)
// in place of the struct: one per JSON key.
func leafFields() []reflect.StructField {
	var out []reflect.StructField
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Worker]()) {
		if !f.Anonymous {
			out = append(out, f)
		}
	}
	return out
}

func TestEveryFieldHasAFlag(t *testing.T) {
	if got, want := len(fields), len(leafFields()); got != want {
		t.Fatalf("fields table has %d entries, Worker has %d fields", got, want)
	}
	seen := map[any]bool{}
	var w Worker
	for _, f := range fields {
		p := reflect.ValueOf(f.ptr(&w)).Pointer()
		if seen[p] {
			t.Errorf("flag -%s points at a field already listed", f.flag)
		}
		seen[p] = true
		if !strings.Contains(WorkerUsage(), EnvPrefix+f.env) {
			t.Errorf("usage lacks %s", EnvPrefix+f.env)
		}
	}
}

// writeFile writes a config file in a temp dir and returns its path.
func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "worker.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, `{
		"redis_addrs": ["file:6379"],
		"mysql_dsn": "u:p@tcp(file:3306)/db",
		"nsqd_addr": "file:4150",
		"topic": "file_topic",
		"lead": "30s",
		"slots": 2,
		"roles": ["api"]
	}`)
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, w Worker)
	}{
		{
			name: "file over defaults",
			args: []string{"-config", file},
			check: func(t *testing.T, w Worker) {
				want(t, "topic", w.Topic, "file_topic")
				want(t, "lead", w.Lead, Duration(30*time.Second))
				want(t, "slots", w.Slots, 2)
				want(t, "tick (default)", w.Tick, Duration(20*time.Millisecond))
				want(t, "redis", w.RedisAddrs, []string{"file:6379"})
			},
		},
		{
			name: "env config path",
			env:  map[string]string{EnvConfig: file},
			check: func(t *testing.T, w Worker) {
				want(t, "topic", w.Topic, "file_topic")
			},
		},
		{
			name: "env over file",
			args: []string{"-config", file},
			env: map[string]string{
				"COUPONPUSH_TOPIC":      "env_topic",
				"COUPONPUSH_REDIS_ADDR": " a:1, b:2 ,",
				"COUPONPUSH_LEAD":       "45s",
				"COUPONPUSH_SLOTS":      "0", // zero: not set here, file wins
				"COUPONPUSH_ROLES":      "api,scheduler",
			},
			check: func(t *testing.T, w Worker) {
				want(t, "topic", w.Topic, "env_topic")
				want(t, "redis", w.RedisAddrs, []string{"a:1", "b:2"})
				want(t, "lead", w.Lead, Duration(45*time.Second))
				want(t, "slots", w.Slots, 2)
				want(t, "roles", w.Roles, []string{"api", "scheduler"})
				want(t, "mysql (file)", w.MySQLDSN, "u:p@tcp(file:3306)/db")
			},
		},
		{
			name: "flag over env over file",
			args: []string{"-config", file, "-topic", "flag_topic", "-lead=50s", "-redis-addr", "f:1", "-mysql-dsn", "u:p@tcp(flag:3306)/db2"},
			env: map[string]string{
				"COUPONPUSH_TOPIC":       "env_topic",
				"COUPONPUSH_LEAD":        "45s",
				"COUPONPUSH_NSQD_TCP":    "env:4150",
				"COUPONPUSH_CONSUL_ADDR": "http://env:8500",
				"COUPONPUSH_WORKER_ID":   "w-env",
			},
			check: func(t *testing.T, w Worker) {
				want(t, "topic", w.Topic, "flag_topic")
				want(t, "lead", w.Lead, Duration(50*time.Second))
				want(t, "redis", w.RedisAddrs, []string{"f:1"})
				want(t, "mysql", w.MySQLDSN, "u:p@tcp(flag:3306)/db2")
				want(t, "nsqd (env)", w.NSQDAddr, "env:4150")
				want(t, "consul (env)", w.ConsulAddr, "http://env:8500")
				want(t, "worker id (env)", w.WorkerID, "w-env")
				want(t, "slots (file)", w.Slots, 2)
			},
		},
		{
			name: "flag config path over env config path",
			args: []string{"-config", file},
			env:  map[string]string{EnvConfig: "/does/not/exist.json"},
			check: func(t *testing.T, w Worker) {
				want(t, "topic", w.Topic, "file_topic")
			},
		},
		{
			name: "no file at all",
			args: []string{"-redis-addr", "r:1", "-mysql-dsn", "u@tcp(m:3306)/d", "-nsqd-tcp", "n:4150"},
			check: func(t *testing.T, w Worker) {
				want(t, "topic", w.Topic, "coupon_push")
				want(t, "consul", w.ConsulAddr, "127.0.0.1:8500")
				want(t, "lease renew", w.LeaseRenew, Duration(250*time.Millisecond))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Identity is not what this test is about: auth off (on loopback).
			w, err := LoadWorker(append(slices.Clone(tt.args), "-auth", "off"), env(tt.env))
			if err != nil {
				t.Fatalf("LoadWorker: %v", err)
			}
			tt.check(t, w)
		})
	}
}

func want[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// valid returns a Worker that passes Validate.
func valid() Worker {
	return Worker{
		RedisAddrs: []string{"127.0.0.1:6379"},
		MySQLDSN:   "u:p@tcp(127.0.0.1:3306)/couponpush",
		NSQDAddr:   "127.0.0.1:4150",
		// Validate does not read it.
		OperatorTokensFile: "/etc/couponpush/operator-tokens",
	}.WithDefaults()
}

func TestValidate(t *testing.T) {
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name   string
		modify func(w *Worker)
		want   string // substring of the error; "" means valid
	}{
		{"unknown role", func(w *Worker) { w.Roles = []string{"api", "pusher"} }, `roles: unknown role "pusher"`},
		{"duplicate role", func(w *Worker) { w.Roles = []string{"api", "api"} }, `roles: role "api" given twice`},
		{"api only needs no nsqd", func(w *Worker) { w.Roles = []string{"api"}; w.NSQDAddr = "" }, ""},
		{"scheduler needs nsqd", func(w *Worker) { w.Roles = []string{"scheduler"}; w.NSQDAddr = "" }, "nsqd_addr: required"},
		{"all roles need nsqd", func(w *Worker) { w.NSQDAddr = "" }, "nsqd_addr: required"},
		{"bad nsqd addr", func(w *Worker) { w.NSQDAddr = "localhost" }, "nsqd_addr:"},
		{"bad http addr", func(w *Worker) { w.HTTPAddr = "8080" }, "http_addr:"},
		{"listen on any port ok", func(w *Worker) { w.HTTPAddr = ":0" }, ""},
		{"bad ops addr", func(w *Worker) { w.OpsAddr = "9090" }, "ops_addr:"},
		{"ops on any port ok", func(w *Worker) { w.OpsAddr = "127.0.0.1:0" }, ""},
		{"no redis", func(w *Worker) { w.RedisAddrs = nil }, "redis_addrs: required"},
		{"bad redis addr", func(w *Worker) { w.RedisAddrs = []string{"r:1", "r:x"} }, "redis_addrs:"},
		{"redis port zero", func(w *Worker) { w.RedisAddrs = []string{"r:0"} }, "redis_addrs:"},
		{"hash tag in prefix", func(w *Worker) { w.RedisPrefix = "cp{x}" }, "redis_prefix:"},
		{"space in prefix", func(w *Worker) { w.RedisPrefix = "a b" }, "redis_prefix:"},
		{"no mysql", func(w *Worker) { w.MySQLDSN = "" }, "mysql_dsn: required"},
		{"bad mysql", func(w *Worker) { w.MySQLDSN = "not a dsn" }, "mysql_dsn:"},
		{"mysql without database", func(w *Worker) { w.MySQLDSN = "u:p@tcp(h:3306)/" }, "mysql_dsn: names no database"},
		{"bad topic", func(w *Worker) { w.Topic = "coupon push" }, "topic:"},
		{"long topic", func(w *Worker) { w.Topic = strings.Repeat("t", 65) }, "topic:"},
		{"ephemeral topic", func(w *Worker) { w.Topic = "coupon_push#ephemeral" }, "topic: \"coupon_push#ephemeral\" is ephemeral"},
		{"consul with scheme ok", func(w *Worker) { w.ConsulAddr = "https://consul:8501" }, ""},
		{"bad consul", func(w *Worker) { w.ConsulAddr = "consul" }, "consul_addr:"},
		{"consul prefix slash", func(w *Worker) { w.ConsulPrefix = "a/b/" }, "consul_prefix:"},
		{"nested consul prefix ok", func(w *Worker) { w.ConsulPrefix = "test/run1" }, ""},
		{"bad service name", func(w *Worker) { w.ServiceName = "worker_1" }, "service_name:"},
		{"bad worker id", func(w *Worker) { w.WorkerID = "a b" }, "worker_id:"},
		{"queue count too big", func(w *Worker) { w.DefaultQueueCount = 65537 }, "default_queue_count:"},
		{"negative queue count", func(w *Worker) { w.DefaultQueueCount = -1 }, "default_queue_count:"},
		{"negative lead", func(w *Worker) { w.Lead = -1 }, "lead: must be positive"},
		{"negative merge window", func(w *Worker) { w.MergeWindow = Duration(-time.Second) }, "merge_window: must not be negative"},
		{"zero tick", func(w *Worker) { w.Tick = 0 }, "tick: must be positive"},
		{"tick longer than lease", func(w *Worker) { w.Tick = Duration(6 * time.Second) }, "tick: must be shorter than lease"},
		{"renew not below lease", func(w *Worker) { w.LeaseRenew = w.Lease }, "lease_renew: must be shorter than lease"},
		{"zero in-flight deadline", func(w *Worker) { w.InFlightDeadline = 0 }, "in_flight_deadline: must be positive"},
		{"zero mark interval", func(w *Worker) { w.MarkInterval = 0 }, "mark_interval: must be positive"},
		{"negative drain", func(w *Worker) { w.DrainTimeout = -1 }, "drain_timeout: must be positive"},
		{"pop batch too big", func(w *Worker) { w.PopBatch = 5001 }, "pop_batch:"},
		{"pop batch at max ok", func(w *Worker) { w.PopBatch = 5000 }, ""},
		{"zero priority ageing", func(w *Worker) { w.PriorityAgeing = Duration(time.Microsecond) }, "priority_ageing:"},
		{"zero slots", func(w *Worker) { w.Slots = 0 }, "slots:"},
		{"mark batch too big", func(w *Worker) { w.MarkBatch = 1001 }, "mark_batch:"},
		{"reconcile deadline within the write budget", func(w *Worker) { w.CouponReconcileDeadline = Duration(5 * time.Second) }, "coupon_reconcile_deadline: must be longer"},
		{"sweep batch too big", func(w *Worker) { w.CouponSweepBatch = 10001 }, "coupon_sweep_batch:"},
		{"negative template refresh", func(w *Worker) { w.TemplateRefreshEvery = -1 }, "template_refresh_every: must be positive"},
		{"bad log level", func(w *Worker) { w.LogLevel = "verbose" }, "log_level:"},
		{"bad log format", func(w *Worker) { w.LogFormat = "xml" }, "log_format:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := valid()
			tt.modify(&w)
			err := w.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("Validate passed, want error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("Validate = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := Worker{LogLevel: "loud"}.Validate()
	if err == nil {
		t.Fatal("zero Worker passed Validate")
	}
	for _, field := range []string{"redis_addrs", "mysql_dsn", "nsqd_addr", "topic", "tick", "lease", "pop_batch", "log_level", "log_format"} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("error lacks %s:\n%v", field, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	good := []string{"-redis-addr", "r:1", "-mysql-dsn", "u@tcp(m:3306)/d", "-nsqd-tcp", "n:4150", "-operator-tokens-file", "/etc/ops"}
	tests := []struct {
		name string
		file string // config file body, if any
		args []string
		env  map[string]string
		want string
	}{
		{name: "unknown field", file: `{"lead": "1s", "leed": "2s"}`, want: `unknown field "leed"`},
		{name: "duration as number", file: `{"lead": 60}`, want: "Worker.lead"},
		{name: "duration garbage", file: `{"tick": "soon"}`, want: `Worker.tick of type config.Duration`},
		{name: "duration bool", file: `{"lease": true}`, want: "Worker.lease"},
		{name: "int as string", file: `{"slots": "4"}`, want: "Worker.slots"},
		{name: "list as string", file: `{"redis_addrs": "a:1"}`, want: "Worker.redis_addrs"},
		{name: "trailing data", file: `{} {}`, want: "unexpected data after"},
		{name: "not json", file: `lead = 1s`, want: "decode:"},
		{name: "missing file", args: []string{"-config", "/nonexistent/worker.json"}, want: "read config file"},
		{name: "bad env duration", env: map[string]string{"COUPONPUSH_LEAD": "1 minute"}, want: "COUPONPUSH_LEAD"},
		{name: "bad env int", env: map[string]string{"COUPONPUSH_SLOTS": "four"}, want: "COUPONPUSH_SLOTS"},
		{name: "bad flag duration", args: []string{"-tick", "fast"}, want: "-tick"},
		{name: "unknown flag", args: []string{"-nope"}, want: "flag provided but not defined"},
		{name: "positional arg", args: []string{"extra"}, want: `unexpected argument "extra"`},
		{name: "invalid after merge", args: []string{"-lease", "1s", "-lease-renew", "2s"}, want: "lease_renew: must be shorter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{}, good...)
			if tt.file != "" {
				args = append(args, "-config", writeFile(t, tt.file))
			}
			args = append(args, tt.args...)
			_, err := LoadWorker(args, env(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadWorker error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		if _, err := LoadWorker([]string{arg}, env(nil)); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("LoadWorker(%s) = %v, want flag.ErrHelp", arg, err)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	var d Duration
	if err := json.Unmarshal([]byte(`"1.5s"`), &d); err != nil || d != Duration(1500*time.Millisecond) {
		t.Fatalf("Unmarshal 1.5s = %v, %v", d, err)
	}
	if err := json.Unmarshal([]byte(`null`), &d); err != nil || d != Duration(1500*time.Millisecond) {
		t.Fatalf("Unmarshal null changed d to %v (%v)", d, err)
	}
	b, err := json.Marshal(Duration(90 * time.Second))
	if err != nil || string(b) != `"1m30s"` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	for _, in := range []string{`60`, `"60"`, `"abc"`, `""`, `{}`, `[]`, `false`} {
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("Unmarshal(%s) accepted", in)
		}
	}
	if got := Duration(2 * time.Second).Duration(); got != 2*time.Second {
		t.Errorf("Duration() = %v", got)
	}
}

func TestHasRoleAndLogger(t *testing.T) {
	if !(Worker{}).HasRole(RoleScheduler) {
		t.Error("no roles should mean all")
	}
	w := Worker{Roles: []string{RoleAPI}, LogLevel: "warn", LogFormat: "json"}
	if w.HasRole(RoleScheduler) || !w.HasRole(RoleAPI) {
		t.Error("HasRole wrong for api-only worker")
	}
	var buf bytes.Buffer
	log := w.NewLogger(&buf)
	log.Info("hidden")
	log.Warn("shown", slog.Int("queue", 3))
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, `"queue":3`) {
		t.Errorf("logger output %q", out)
	}
}

func FuzzLoadWorkerFile(f *testing.F) {
	if data, err := os.ReadFile(examplePath); err == nil {
		f.Add(data)
	}
	for _, s := range []string{`{}`, `{"lead":"1s"}`, `{"lead":60}`, `{"roles":["api"],"slots":-1}`, `{"x":1}`, `null`, `[]`, `{"tick":"-5ms"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := decodeWorker(data)
		if err != nil {
			return
		}
		_ = w.WithDefaults().Validate() // must not panic
		// What decodes must survive a round trip unchanged.
		out, err := json.Marshal(w)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", w, err)
		}
		again, err := decodeWorker(out)
		if err != nil {
			t.Fatalf("decode of re-encoded %s: %v", out, err)
		}
		if !reflect.DeepEqual(w, again) {
			t.Fatalf("round trip changed\n%+v\n%+v", w, again)
		}
	})
}
