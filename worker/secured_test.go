package worker_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"couponpush/internal/enginetest"
	"couponpush/worker"
)

// TestWorkerOnSecuredRedis: a worker connects to a Redis that wants a
// password (the default user's, and an ACL user's) over TLS with a custom
// CA, and refuses to start, with a clear error and exit status 1, when the
// password or the CA is wrong. The password comes from a file, so it is
// never in the worker's arguments, and never in its output.
func TestWorkerOnSecuredRedis(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	certs := enginetest.TLSCerts(t)
	const password, aclPassword = "s3cret-default-pw", "s3cret-acl-pw"
	addr, _ := enginetest.StartRedisTLS(t, certs, "--requirepass", password,
		"--user", "app", "on", ">"+aclPassword, "~*", "&*", "+@all")
	dir := t.TempDir()
	secret := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, acl, wrong := secret("good", password), secret("acl", aclPassword), secret("wrong", "not-the-password")
	secured := func(passwordFile, ca string, more ...string) []string {
		return append([]string{"-redis-addr", addr, "-redis-password-file", passwordFile, "-redis-tls-ca-file", ca}, more...)
	}

	t.Run("password over TLS", func(t *testing.T) {
		p := e.startWorker(t, "secured-1", append(secured(good, certs.CA), "-roles", "api")...)
		assertNoSecret(t, p.log.String(), password)
	})
	t.Run("ACL user over TLS", func(t *testing.T) {
		p := e.startWorker(t, "secured-2", append(secured(acl, certs.CA, "-redis-username", "app"), "-roles", "api")...)
		assertNoSecret(t, p.log.String(), aclPassword)
	})

	otherCA := enginetest.TLSCerts(t).CA
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"wrong password", secured(wrong, certs.CA), "WRONGPASS"},
		{"wrong CA", secured(good, otherCA), "certificate signed by unknown authority"},
		{"plain text to the TLS port", []string{"-redis-addr", addr, "-redis-password-file", good}, "redis"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{
				"-mysql-dsn", e.dsn, "-nsqd-tcp", e.nsqd, "-consul-addr", e.consul,
				"-redis-prefix", e.prefix, "-consul-prefix", e.prefix, "-topic", e.prefix,
				"-http-addr", enginetest.FreeAddr(t), "-ops-addr", "127.0.0.1:0", "-worker-id", "refused", "-service-name", e.service, "-auth", "off",
			}, tc.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, e.bin, args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("worker exited with %v, want status 1; output:\n%s", err, out.String())
			}
			if s := out.String(); !strings.Contains(s, "unreachable") || !strings.Contains(s, tc.want) {
				t.Errorf("output lacks %q (and unreachable):\n%s", tc.want, s)
			}
			assertNoSecret(t, out.String(), password)
		})
	}
}

func assertNoSecret(t *testing.T, out, secret string) {
	t.Helper()
	if strings.Contains(out, secret) {
		t.Errorf("output shows the secret:\n%s", out)
	}
}

// TestNormalBuildHasNoFailpoint: a worker built without -tags failpoint
// carries no fault hook, so FailpointEnv set in production does nothing.
func TestNormalBuildHasNoFailpoint(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", bin, "couponpush/cmd/worker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"crash-before-ack", "stop-before-publish", "crash-after-prepare", "clock-skew", "failpoint armed"} {
		if bytes.Contains(data, []byte(s)) {
			t.Errorf("a normal build contains %q: the %s hook is compiled in", s, worker.FailpointEnv)
		}
	}
	// The test build does carry it, or the check above proves nothing.
	tagged, err := os.ReadFile(buildWorker(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"crash-before-ack", "stop-before-publish", "crash-after-prepare", "clock-skew"} {
		if !bytes.Contains(tagged, []byte(s)) {
			t.Errorf("the -tags failpoint build lacks the %s hook", s)
		}
	}
}
