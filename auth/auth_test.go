package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

var (
	now    = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	secret = []byte("0123456789abcdef0123456789abcdef") // 32 bytes
	opTok  = "operator-token-0123456789"
)

// testKeys are the signing keys of the tests, made once per binary (RSA
// keys are slow to generate under -race).
type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
}

var keysOnce = sync.OnceValue(func() testKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var k testKeys
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	return k
})

func pemOf(t *testing.T, pubs ...crypto.PublicKey) []byte {
	t.Helper()
	var out []byte
	for _, p := range pubs {
		der, err := x509.MarshalPKIXPublicKey(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	return out
}

type jwk struct {
	kid string
	alg jwkset.ALG
	pub any
	use jwkset.USE // default sig
}

func jwksOf(t *testing.T, keys ...jwk) []byte {
	t.Helper()
	var set jwkset.JWKSMarshal
	for _, k := range keys {
		if k.use == "" {
			k.use = jwkset.UseSig
		}
		j, err := jwkset.NewJWKFromKey(k.pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: k.alg, USE: k.use}})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, j.Marshal())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign makes a token of claims signed by key under m, with kid if set.
func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claims are valid user claims for user 42, with edits.
func claims(edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "42", "exp": now.Add(time.Hour).Unix(), "aud": "couponpush", "iss": "https://id.example"}
	if edit != nil {
		edit(c)
	}
	return c
}

// unsigned is an "alg: none" token of c.
func unsigned(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newAuth(t *testing.T, c Config) *Authenticator {
	t.Helper()
	c.Now = func() time.Time { return now }
	a, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	k := keysOnce()
	pemKeys, err := ParsePEM(pemOf(t, k.rsa.Public(), k.ec.Public(), k.ed.Public()))
	if err != nil {
		t.Fatal(err)
	}
	a := newAuth(t, Config{OperatorTokens: []string{opTok, "second-operator-token"}, HS256Secret: secret,
		PublicKeys: pemKeys, Audience: "couponpush", Issuer: "https://id.example"})
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, secret, "", c) }

	tests := []struct {
		name   string
		header string
		want   Caller
		err    error
		reason string // in the error
	}{
		{"operator", "Bearer " + opTok, Caller{Operator: true}, nil, ""},
		{"second operator token (rotation)", "Bearer second-operator-token", Caller{Operator: true}, nil, ""},
		{"scheme is case-insensitive", "bearer " + opTok, Caller{Operator: true}, nil, ""},
		{"operator token prefix", "Bearer " + opTok[:len(opTok)-1], Caller{}, ErrInvalidToken, ""},
		{"operator token longer", "Bearer " + opTok + "x", Caller{}, ErrInvalidToken, ""},
		{"no header", "", Caller{}, ErrNoToken, ""},
		{"other scheme", "Basic " + opTok, Caller{}, ErrNoToken, ""},
		{"empty bearer", "Bearer ", Caller{}, ErrNoToken, ""},
		{"HS256 valid", "Bearer " + hs(claims(nil)), Caller{UserID: 42}, nil, ""},
		{"RS256 valid", "Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(nil)), Caller{UserID: 42}, nil, ""},
		{"ES256 valid", "Bearer " + sign(t, jwt.SigningMethodES256, k.ec, "", claims(nil)), Caller{UserID: 42}, nil, ""},
		{"EdDSA valid", "Bearer " + sign(t, jwt.SigningMethodEdDSA, k.ed, "", claims(nil)), Caller{UserID: 42}, nil, ""},
		{"PEM key tried whatever the kid", "Bearer " + sign(t, jwt.SigningMethodES256, k.ec, "any", claims(nil)), Caller{UserID: 42}, nil, ""},
		{"audience among several", "Bearer " + hs(claims(func(c jwt.MapClaims) { c["aud"] = []string{"other", "couponpush"} })), Caller{UserID: 42}, nil, ""},
		{"expired within leeway", "Bearer " + hs(claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() })), Caller{UserID: 42}, nil, ""},
		{"expired", "Bearer " + hs(claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), Caller{}, ErrInvalidToken, "expired"},
		{"not valid yet", "Bearer " + hs(claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), Caller{}, ErrInvalidToken, "not valid yet"},
		{"no exp", "Bearer " + hs(claims(func(c jwt.MapClaims) { delete(c, "exp") })), Caller{}, ErrInvalidToken, "exp"},
		{"exp null", "Bearer " + hs(claims(func(c jwt.MapClaims) { c["exp"] = nil })), Caller{}, ErrInvalidToken, "exp"},
		{"exp as a number in a string (accepted, as golang-jwt reads it)", "Bearer " + hs(claims(func(c jwt.MapClaims) { c["exp"] = strconv.FormatInt(now.Add(time.Hour).Unix(), 10) })), Caller{UserID: 42}, nil, ""},
		{"exp with a fraction", "Bearer " + hs(claims(func(c jwt.MapClaims) { c["exp"] = float64(now.Unix()) + 0.5 })), Caller{UserID: 42}, nil, ""},
		{"expired by a fraction past the leeway", "Bearer " + hs(claims(func(c jwt.MapClaims) { c["exp"] = float64(now.Add(-DefaultLeeway).Unix()) - 0.5 })), Caller{}, ErrInvalidToken, "expired"},
		{"nbf within leeway", "Bearer " + hs(claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Second).Unix() })), Caller{UserID: 42}, nil, ""},
		{"aud not a string", "Bearer " + hs(claims(func(c jwt.MapClaims) { c["aud"] = 7 })), Caller{}, ErrInvalidToken, "malformed"},
		{"wrong HS256 secret", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-thirty-two-byt"), "", claims(nil)), Caller{}, ErrInvalidToken, "signature"},
		{"wrong RSA key", "Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa2, "", claims(nil)), Caller{}, ErrInvalidToken, "signature"},
		{"alg not accepted (HS384)", "Bearer " + sign(t, jwt.SigningMethodHS384, secret, "", claims(nil)), Caller{}, ErrInvalidToken, "signing method"},
		{"alg not accepted (PS256)", "Bearer " + sign(t, jwt.SigningMethodPS256, k.rsa, "", claims(nil)), Caller{}, ErrInvalidToken, "signing method"},
		{"alg none", "Bearer " + unsigned(t, claims(nil)), Caller{}, ErrInvalidToken, "signing method"},
		{"alg confusion: HS256 signed with the RSA public key", "Bearer " + sign(t, jwt.SigningMethodHS256, pemOf(t, k.rsa.Public()), "", claims(nil)), Caller{}, ErrInvalidToken, "signature"},
		{"wrong aud", "Bearer " + hs(claims(func(c jwt.MapClaims) { c["aud"] = "other" })), Caller{}, ErrInvalidToken, "audience"},
		{"no aud", "Bearer " + hs(claims(func(c jwt.MapClaims) { delete(c, "aud") })), Caller{}, ErrInvalidToken, "aud"},
		{"wrong iss", "Bearer " + hs(claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), Caller{}, ErrInvalidToken, "issuer"},
		{"garbage", "Bearer not.a.jwt", Caller{}, ErrInvalidToken, "malformed"},
	}
	for _, sub := range []any{"0", "-1", "+42", "042", "4 2", "42a", "", "9223372036854775808", 42} {
		tests = append(tests, struct {
			name   string
			header string
			want   Caller
			err    error
			reason string
		}{"sub " + strings.ReplaceAll(jsonOf(t, sub), `"`, "'"), "Bearer " + hs(claims(func(c jwt.MapClaims) { c["sub"] = sub })), Caller{}, ErrInvalidToken, "sub"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.Authenticate(tt.header)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("Authenticate = %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
			if err != nil && !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
			if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(tt.header, "Bearer ")) && tt.header != "Bearer " && tt.header != "" {
				t.Errorf("error %q carries the token", err)
			}
		})
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAlgorithmsFollowTheKeys: an algorithm is accepted only when a key of
// its kind is configured.
func TestAlgorithmsFollowTheKeys(t *testing.T) {
	t.Parallel()
	k := keysOnce()
	onlyRSA, err := ParsePEM(pemOf(t, k.rsa.Public()))
	if err != nil {
		t.Fatal(err)
	}
	a := newAuth(t, Config{PublicKeys: onlyRSA})
	for name, tok := range map[string]string{
		"HS256 without a secret":  sign(t, jwt.SigningMethodHS256, []byte{}, "", claims(nil)),
		"ES256 without an EC key": sign(t, jwt.SigningMethodES256, k.ec, "", claims(nil)),
		"alg none":                unsigned(t, claims(nil)),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := a.Authenticate("Bearer " + tok); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Authenticate = %v, want ErrInvalidToken", err)
			}
		})
	}
	if c, err := a.Authenticate("Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(nil))); err != nil || c.UserID != 42 {
		t.Fatalf("RS256 = %+v, %v", c, err)
	}

	ops := newAuth(t, Config{OperatorTokens: []string{opTok}})
	if _, err := ops.Authenticate("Bearer " + sign(t, jwt.SigningMethodHS256, secret, "", claims(nil))); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("user token with operators only = %v, want ErrInvalidToken", err)
	}
}

func TestJWKSKidSelection(t *testing.T) {
	t.Parallel()
	k := keysOnce()
	keys, err := ParseJWKS(jwksOf(t,
		jwk{"r1", jwkset.AlgRS256, k.rsa.Public(), ""},
		jwk{"r2", jwkset.AlgRS256, k.rsa2.Public(), ""},
		jwk{"e1", jwkset.AlgES256, k.ec.Public(), ""},
		jwk{"d1", "", k.ed.Public(), ""},
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4 {
		t.Fatalf("ParseJWKS gave %d keys, want 4", len(keys))
	}
	a := newAuth(t, Config{PublicKeys: keys})
	tests := []struct {
		name string
		tok  string
		ok   bool
	}{
		{"kid r1, key r1", sign(t, jwt.SigningMethodRS256, k.rsa, "r1", claims(nil)), true},
		{"kid r2, key r2", sign(t, jwt.SigningMethodRS256, k.rsa2, "r2", claims(nil)), true},
		{"kid r1, key r2", sign(t, jwt.SigningMethodRS256, k.rsa2, "r1", claims(nil)), false},
		{"no kid tries every RSA key", sign(t, jwt.SigningMethodRS256, k.rsa2, "", claims(nil)), true},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, k.rsa, "r9", claims(nil)), false},
		{"kid of a key of another type", sign(t, jwt.SigningMethodRS256, k.rsa, "e1", claims(nil)), false},
		{"ES256 kid e1", sign(t, jwt.SigningMethodES256, k.ec, "e1", claims(nil)), true},
		{"EdDSA kid d1", sign(t, jwt.SigningMethodEdDSA, k.ed, "d1", claims(nil)), true},
		{"alg none with a kid", unsigned(t, claims(nil)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := a.Authenticate("Bearer " + tt.tok)
			if tt.ok && (err != nil || c.UserID != 42) {
				t.Fatalf("Authenticate = %+v, %v; want user 42", c, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Authenticate = %+v, %v; want ErrInvalidToken", c, err)
			}
		})
	}
}

func TestParseJWKSRefuses(t *testing.T) {
	t.Parallel()
	k := keysOnce()
	b64 := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name string
		jwks string
		want string
	}{
		{"not json", `{`, "jwks"},
		{"empty", `{"keys": []}`, "no signature key"},
		{"symmetric", `{"keys": [{"kty": "oct", "kid": "s", "k": "` + b64(secret) + `"}]}`, "symmetric"},
		{"private", string(jwksPrivate(t, k.ec)), "private"},
		{"only encryption keys", string(jwksOf(t, jwk{"e", jwkset.AlgES256, k.ec.Public(), jwkset.UseEnc})), "no signature key"},
		{"alg of another type", string(jwksOf(t, jwk{"e", jwkset.AlgRS384, k.rsa.Public(), ""})), "no signature key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseJWKS([]byte(tt.jwks))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseJWKS = %v, want an error saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), b64(secret)) {
				t.Errorf("error %q carries key material", err)
			}
		})
	}
}

func jwksPrivate(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	j, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{Marshal: jwkset.JWKMarshalOptions{Private: true}, Metadata: jwkset.JWKMetadataOptions{KID: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{j.Marshal()}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePEMRefuses(t *testing.T) {
	t.Parallel()
	k := keysOnce()
	der, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pem  []byte
		want string
	}{
		{"nothing", []byte("hello"), "no PEM public key"},
		{"private key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), "private key"},
		{"P-384", pemOf(t, p384.Public()), "P-256"},
		{"small RSA", pemOf(t, small.Public()), "2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParsePEM(tt.pem); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParsePEM = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing", Config{}, "no operator token and no user key"},
		{"short secret", Config{HS256Secret: []byte("short")}, "at least 32"},
		{"short operator token", Config{OperatorTokens: []string{"abc"}}, "at least 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "short") || strings.Contains(err.Error(), "abc") {
				t.Errorf("error %q carries the secret", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k := keysOnce()
	c, err := Load(Sources{
		OperatorToken:      opTok,
		OperatorTokensFile: write("ops", "# rotation\nfirst-operator-token-1\n\n  second-operator-token-2  \n"),
		HS256SecretFile:    write("secret", string(secret)+"\n"),
		PublicKeysFile:     write("keys.pem", string(pemOf(t, k.ed.Public()))),
		JWKSFile:           write("jwks.json", string(jwksOf(t, jwk{"e1", jwkset.AlgES256, k.ec.Public(), ""}))),
		Audience:           "couponpush",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.OperatorTokens, ","); got != opTok+",first-operator-token-1,second-operator-token-2" {
		t.Errorf("operator tokens = %q", got)
	}
	if string(c.HS256Secret) != string(secret) {
		t.Errorf("secret = %q, want the file without its newline", c.HS256Secret)
	}
	if len(c.PublicKeys) != 2 || c.PublicKeys[0].Alg() != "EdDSA" || c.PublicKeys[1].ID != "e1" {
		t.Errorf("public keys = %+v", c.PublicKeys)
	}
	if c.Audience != "couponpush" {
		t.Errorf("audience = %q", c.Audience)
	}

	for name, s := range map[string]Sources{
		"missing file":         {JWKSFile: filepath.Join(dir, "absent")},
		"secret twice":         {HS256Secret: string(secret), HS256SecretFile: write("s2", string(secret))},
		"empty tokens file":    {OperatorTokensFile: write("empty", "# none\n")},
		"empty secret file":    {HS256SecretFile: write("empty-secret", "\n")},
		"public keys not PEM":  {PublicKeysFile: write("bad.pem", "nope")},
		"jwks file not a JWKS": {JWKSFile: write("bad.json", "[]")},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Load(s); err == nil {
				t.Fatal("Load succeeded")
			} else if strings.Contains(err.Error(), string(secret)) {
				t.Errorf("error %q carries the secret", err)
			}
		})
	}
}
