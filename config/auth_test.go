package config

import (
	"slices"
	"strings"
	"testing"
)

func TestValidateAuth(t *testing.T) {
	const secret = "a-secret-of-at-least-thirty-two-bytes"
	tests := []struct {
		name string
		edit func(w *Worker)
		want string // "" = valid
	}{
		{"on with an operator tokens file", func(*Worker) {}, ""},
		{"on by default", func(w *Worker) { w.Auth = "" }, "auth: "}, // WithDefaults sets it; Validate refuses empty
		{"on with no keys", func(w *Worker) { w.OperatorTokensFile = "" }, "COUPONPUSH_OPERATOR_TOKEN"},
		{"on with no keys, no api role", func(w *Worker) { w.OperatorTokensFile = ""; w.Roles = []string{RoleScheduler} }, ""},
		{"on with a JWKS only", func(w *Worker) { w.OperatorTokensFile = ""; w.JWTJWKS = "/etc/jwks.json" }, ""},
		{"off on 127.0.0.1", func(w *Worker) { w.Auth = AuthOff; w.OperatorTokensFile = "" }, ""},
		{"off on ::1", func(w *Worker) { w.Auth = AuthOff; w.HTTPAddr = "[::1]:8080" }, ""},
		{"off on localhost", func(w *Worker) { w.Auth = AuthOff; w.HTTPAddr = "localhost:8080" }, ""},
		{"off on 127.1.2.3", func(w *Worker) { w.Auth = AuthOff; w.HTTPAddr = "127.1.2.3:0" }, ""},
		{"off on every interface", func(w *Worker) { w.Auth = AuthOff; w.HTTPAddr = ":8080" }, `auth: off is refused: http_addr ":8080" is not on loopback`},
		{"off on 0.0.0.0", func(w *Worker) { w.Auth = AuthOff; w.HTTPAddr = "0.0.0.0:8080" }, "not on loopback"},
		{"off on a LAN address", func(w *Worker) { w.Auth = AuthOff; w.HTTPAddr = "10.0.0.5:8080" }, "not on loopback"},
		{"off on a host name", func(w *Worker) { w.Auth = AuthOff; w.HTTPAddr = "api.example:8080" }, "not on loopback"},
		{"off with the ops listener on every interface", func(w *Worker) { w.Auth = AuthOff; w.OpsAddr = ":9090" }, `auth: off is refused: ops_addr ":9090" is not on loopback`},
		{"off with the ops listener on a LAN address", func(w *Worker) { w.Auth = AuthOff; w.OpsAddr = "10.0.0.5:9090" }, `ops_addr "10.0.0.5:9090" is not on loopback`},
		{"off with the ops listener on ::1", func(w *Worker) { w.Auth = AuthOff; w.OpsAddr = "[::1]:9090" }, ""},
		{"on with the ops listener on every interface", func(w *Worker) { w.OpsAddr = ":9090" }, ""},
		{"neither on nor off", func(w *Worker) { w.Auth = "maybe" }, `auth: "maybe" is not on or off`},
		{"secret twice", func(w *Worker) { w.JWTHS256Secret = secret; w.JWTHS256SecretFile = "/s" }, "jwt_hs256_secret: give it once"},
		{"short secret", func(w *Worker) { w.JWTHS256Secret = "hush-hush" }, "jwt_hs256_secret: is 9 bytes, want at least 32"},
		{"short operator token", func(w *Worker) { w.OperatorToken = "letmein" }, "operator_token: is 7 bytes, want at least 16"},
		{"secret by value", func(w *Worker) { w.JWTHS256Secret = secret }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := valid()
			tt.edit(&w)
			err := w.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want it to say %q", err, tt.want)
			}
			for _, s := range []string{secret, "hush-hush", "letmein"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q carries a secret", err)
				}
			}
		})
	}
}

// TestLoadAuth: every identity setting comes by flag, env and file, and
// auth off off loopback fails LoadWorker (so cmd/worker exits 2).
func TestLoadAuth(t *testing.T) {
	base := []string{"-redis-addr", "r:1", "-mysql-dsn", "u@tcp(m:3306)/d", "-nsqd-tcp", "n:4150"}
	file := writeFile(t, `{"operator_tokens_file": "/file/ops", "jwt_jwks": "/file/jwks.json", "jwt_issuer": "file-iss"}`)
	w, err := LoadWorker(append(base, "-config", file, "-jwt-audience", "flag-aud", "-jwt-public-keys", "/flag/keys.pem"),
		env(map[string]string{"COUPONPUSH_JWT_HS256_SECRET_FILE": "/env/secret", "COUPONPUSH_JWT_JWKS": "/env/jwks.json",
			"COUPONPUSH_OPERATOR_TOKEN": "env-operator-token-1234"}))
	if err != nil {
		t.Fatal(err)
	}
	want(t, "auth", w.Auth, AuthOn)
	want(t, "operator tokens file (file)", w.OperatorTokensFile, "/file/ops")
	want(t, "operator token (env)", w.OperatorToken.Reveal(), "env-operator-token-1234")
	want(t, "jwks (env over file)", w.JWTJWKS, "/env/jwks.json")
	want(t, "secret file (env)", w.JWTHS256SecretFile, "/env/secret")
	want(t, "public keys (flag)", w.JWTPublicKeys, "/flag/keys.pem")
	want(t, "audience (flag)", w.JWTAudience, "flag-aud")
	want(t, "issuer (file)", w.JWTIssuer, "file-iss")
	s := w.AuthSources()
	if s.OperatorToken != w.OperatorToken.Reveal() || s.HS256SecretFile != "/env/secret" || s.PublicKeysFile != "/flag/keys.pem" ||
		s.JWKSFile != "/env/jwks.json" || s.Audience != "flag-aud" || s.Issuer != "file-iss" || s.OperatorTokensFile != "/file/ops" {
		t.Errorf("AuthSources = %+v", s)
	}

	for name, tt := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"off by env on every interface":             {[]string{"-http-addr", "0.0.0.0:8080"}, map[string]string{"COUPONPUSH_AUTH": "off"}, "auth: off is refused"},
		"off by flag on every interface":            {[]string{"-auth", "off", "-http-addr", ":8080"}, nil, "auth: off is refused"},
		"off by env, ops by env on every interface": {nil, map[string]string{"COUPONPUSH_AUTH": "off", "COUPONPUSH_OPS_ADDR": "0.0.0.0:9090"}, `ops_addr "0.0.0.0:9090" is not on loopback`},
		"on with no keys":                           {nil, nil, "no token or key is configured"},
		"secret by env, too short":                  {nil, map[string]string{"COUPONPUSH_JWT_HS256_SECRET": "tiny-secret"}, "jwt_hs256_secret: is 11 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadWorker(append(slices.Clone(base), tt.args...), env(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadWorker = %v, want it to say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "tiny-secret") {
				t.Errorf("error %q carries the secret", err)
			}
		})
	}
}
