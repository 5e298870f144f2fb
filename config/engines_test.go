package config

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The secrets of secretWorker; none may show in any output.
var secretValues = []string{"dsn-pass-1", "redis-pass-2", "mysql-pass-3", "nsq-secret-4", "consul-token-5",
	"operator-token-6-abcdef", "hs256-secret-7-0123456789abcdef0123"}

func secretWorker() Worker {
	w := Worker{
		RedisAddrs: []string{"127.0.0.1:6379"},
		MySQLDSN:   "app:dsn-pass-1@tcp(127.0.0.1:3306)/couponpush",
		NSQDAddr:   "127.0.0.1:4150",
	}.WithDefaults()
	w.RedisPassword = "redis-pass-2"
	w.MySQLPassword = "mysql-pass-3"
	w.NSQDAuthSecret = "nsq-secret-4"
	w.ConsulToken = "consul-token-5"
	w.OperatorToken = "operator-token-6-abcdef"
	w.JWTHS256Secret = "hs256-secret-7-0123456789abcdef0123"
	return w
}

func assertNoSecret(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range secretValues {
		if strings.Contains(out, s) {
			t.Errorf("%s shows secret %q:\n%s", what, s, out)
		}
	}
}

func TestSecretsNeverShow(t *testing.T) {
	w := secretWorker()
	if err := w.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("config", "cfg", w, "dsn", RedactDSN(w.MySQLDSN))
	slog.New(slog.NewJSONHandler(&js, nil)).Info("config", "cfg", w)
	bad := w
	bad.Topic = "#ephemeral"
	bad.RedisTLSCAFile = "/no/such/ca.pem"
	bad.MySQLTLSCertFile = "/no/such/cert.pem"
	tests := []struct{ name, out string }{
		{"%v", fmt.Sprintf("%v", w)},
		{"%+v", fmt.Sprintf("%+v", w)},
		{"%#v", fmt.Sprintf("%#v", w)},
		{"%v of a pointer", fmt.Sprintf("%v", &w)},
		{"%v of Engines", fmt.Sprintf("%+v", w.Engines)},
		{"slog text", text.String()},
		{"slog json", js.String()},
		{"Validate error", fmt.Sprint(bad.Validate())},
		{"RedactDSN", RedactDSN(w.MySQLDSN)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertNoSecret(t, tc.name, tc.out)
			if tc.name != "Validate error" && !strings.Contains(tc.out, redacted) {
				t.Errorf("%s shows no %s: %s", tc.name, redacted, tc.out)
			}
		})
	}
	if !strings.Contains(RedactDSN(w.MySQLDSN), "app:[redacted]@tcp(127.0.0.1:3306)/couponpush") {
		t.Errorf("RedactDSN = %q", RedactDSN(w.MySQLDSN))
	}
}

func TestSecretsFromLoadErrorsNeverShow(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "redis-pass")
	if err := os.WriteFile(file, []byte("redis-pass-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"COUPONPUSH_REDIS_ADDR":       "127.0.0.1:6379",
		"COUPONPUSH_MYSQL_DSN":        "app:dsn-pass-1@tcp(127.0.0.1:3306)/couponpush",
		"COUPONPUSH_NSQD_TCP":         "127.0.0.1:4150",
		"COUPONPUSH_MYSQL_PASSWORD":   "mysql-pass-3",
		"COUPONPUSH_NSQD_AUTH_SECRET": "nsq-secret-4",
		"COUPONPUSH_CONSUL_TOKEN":     "consul-token-5",
		"COUPONPUSH_TOPIC":            "#ephemeral", // invalid: the load fails
	}
	_, err := LoadWorker([]string{"-redis-password-file", file}, func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("want an error for the ephemeral topic")
	}
	assertNoSecret(t, "LoadWorker error", err.Error())

	// Both ways at once is an error that names the fields, not the values.
	env["COUPONPUSH_TOPIC"] = ""
	env["COUPONPUSH_REDIS_PASSWORD"] = "redis-pass-2"
	_, err = LoadWorker([]string{"-redis-password-file", file}, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "redis_password or redis_password_file") {
		t.Fatalf("err = %v, want one naming redis_password and redis_password_file", err)
	}
	assertNoSecret(t, "LoadWorker error", err.Error())
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := map[string]string{
		"COUPONPUSH_REDIS_ADDR":            "127.0.0.1:6379",
		"COUPONPUSH_MYSQL_DSN":             "app@tcp(127.0.0.1:3306)/couponpush",
		"COUPONPUSH_NSQD_TCP":              "127.0.0.1:4150",
		"COUPONPUSH_MYSQL_PASSWORD_FILE":   write("mysql", "m-pass\r\n"),
		"COUPONPUSH_NSQD_AUTH_SECRET_FILE": write("nsq", "n-secret"),
		"COUPONPUSH_CONSUL_TOKEN_FILE":     write("consul", "c-token\n"),
		"COUPONPUSH_AUTH":                  "off",
	}
	w, err := LoadWorker([]string{"-redis-password-file", write("redis", "r-pass\n"), "-redis-username", "app", "-redis-tls"},
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	got := []string{w.RedisPassword.Reveal(), w.MySQLPassword.Reveal(), w.NSQDAuthSecret.Reveal(), w.ConsulToken.Reveal(), w.RedisUsername}
	want := []string{"r-pass", "m-pass", "n-secret", "c-token", "app"}
	if fmt.Sprint(got) != fmt.Sprint(want) || !w.RedisTLS {
		t.Errorf("secrets %q, redis_tls %v; want %q, true", got, w.RedisTLS, want)
	}

	tests := []struct {
		name, file, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "redis_password_file"},
		{"empty", write("empty", "\n"), "is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadWorker([]string{"-redis-password-file", tc.file}, func(k string) string { return env[k] })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one with %q", err, tc.want)
			}
		})
	}
}

func TestTLSSettingsValidated(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Worker)
		field string
	}{
		{"missing CA", func(w *Worker) { w.RedisTLSCAFile = "/no/such/ca.pem" }, "redis_tls"},
		{"CA without PEM", func(w *Worker) { w.NSQDTLSCAFile = os.Args[0] }, "nsqd_tls"},
		{"cert without key", func(w *Worker) { w.RedisTLS, w.RedisTLSCertFile = true, "/x.pem" }, "redis_tls"},
		{"server name without TLS", func(w *Worker) { w.RedisTLSServerName = "redis.internal" }, "redis_tls"},
		{"mysql cert without CA", func(w *Worker) { w.MySQLTLSCertFile = "/x.pem" }, "mysql_tls_ca_file"},
		{"consul missing CA", func(w *Worker) { w.ConsulTLSCAFile = "/no/such/ca.pem" }, "consul_tls"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := secretWorker()
			tc.edit(&w)
			err := w.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("err = %v, want one for %s", err, tc.field)
			}
		})
	}
}

func TestEngineFlags(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	env := map[string]string{"COUPONPUSH_REDIS_USERNAME": "env-user", "COUPONPUSH_CONSUL_TOKEN_FILE": token, "COUPONPUSH_NSQD_AUTH_SECRET": "not mine"}
	load := EngineFlags(fs, func(k string) string { return env[k] }, EngineRedis, EngineConsul)
	if err := fs.Parse([]string{"-redis-password", "pw"}); err != nil {
		t.Fatal(err)
	}
	e, err := load()
	if err != nil {
		t.Fatal(err)
	}
	if e.RedisUsername != "env-user" || e.RedisPassword != "pw" || e.ConsulToken != "t0ken" || e.NSQDAuthSecret != "" {
		t.Errorf("engines = %#v (user %q)", e, e.RedisUsername)
	}
	if fs.Lookup("nsqd-auth-secret") != nil || fs.Lookup("mysql-password") != nil {
		t.Error("flags of engines not asked for were registered")
	}
	if err := fs.Parse([]string{"-redis-tls-ca-file", "/no/such"}); err != nil {
		t.Fatal(err)
	}
	if _, err := load(); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("load with a missing CA: %v", err)
	}
}
