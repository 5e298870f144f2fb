package worker_test

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestWorkerRefusesUnsafeAuth: cmd/worker exits 2 at start-up, with a
// message that says what to do, when auth is off on a listener that is not
// on loopback, or on with no key; and no message shows a secret.
func TestWorkerRefusesUnsafeAuth(t *testing.T) {
	t.Parallel()
	bin := buildWorker(t)
	engines := []string{"-redis-addr", "127.0.0.1:1", "-mysql-dsn", "u:p@tcp(127.0.0.1:1)/d", "-nsqd-tcp", "127.0.0.1:1"}
	tests := []struct {
		name    string
		args    []string
		environ []string
		want    string
	}{
		{"auth off on every interface", []string{"-auth", "off", "-http-addr", "0.0.0.0:0"}, nil, `auth: off is refused: http_addr "0.0.0.0:0" is not on loopback`},
		{"auth off by env on a LAN address", []string{"-http-addr", "192.0.2.1:8080"}, []string{"COUPONPUSH_AUTH=off"}, "auth: off is refused"},
		{"auth on, no keys", nil, nil, "COUPONPUSH_OPERATOR_TOKEN"},
		{"short secret", nil, []string{"COUPONPUSH_JWT_HS256_SECRET=hush-hush-hush"}, "jwt_hs256_secret: is 14 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(bin, append(engines, tt.args...)...)
			cmd.Env = append(withoutCouponpush(os.Environ()), tt.environ...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("worker exited with %v, want exit status 2; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output does not say %q:\n%s", tt.want, out)
			}
			if strings.Contains(string(out), "hush-hush") {
				t.Errorf("output shows the secret:\n%s", out)
			}
		})
	}
}

// withoutCouponpush drops COUPONPUSH_* (the test engines' addresses), so
// only the test's own settings count.
func withoutCouponpush(environ []string) []string {
	var out []string
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "COUPONPUSH_") {
			out = append(out, kv)
		}
	}
	return out
}

// TestWorkerAuthOn: a worker given an operator token and an HS256 secret
// file serves the probes to anyone, refuses a request without a token and
// lets a user act for themself.
func TestWorkerAuthOn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secret := "worker-test-secret-of-32-bytes!!"
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const operator = "worker-test-operator-token"
	p := e.startWorker(t, "auth1", "-roles", "api", "-auth", "on", "-jwt-hs256-secret-file", secretFile, "-operator-token", operator)
	if strings.Contains(p.log.String(), secret) || strings.Contains(p.log.String(), operator) {
		t.Errorf("the worker logged a secret:\n%s", p.log.String())
	}
	api := "http://" + p.addr
	send := func(token, method, path string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, api+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	user, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "5", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, token, method, path string
		want                      int
	}{
		{"probe without a token", "", "GET", "/healthz", 200},
		{"metrics without a token", "", "GET", "/metrics", 200},
		{"no token", "", "GET", "/v1/subscriptions/5", 401},
		{"user for themself", user, "GET", "/v1/subscriptions/5", 200},
		{"user for another", user, "GET", "/v1/subscriptions/6", 403},
		{"operator for anyone", operator, "GET", "/v1/subscriptions/6", 200},
		{"user on an operators' route", user, "POST", "/v1/templates", 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := send(tt.token, tt.method, tt.path)
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
			}
			if tt.want == 401 && resp.Header.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}
