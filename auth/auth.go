package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Limits that New enforces.
const (
	// MinSecretBytes is the shortest HS256 secret: RFC 7518 §3.2 asks for
	// a key at least as long as the hash (256 bits).
	MinSecretBytes = 32
	// MinOperatorTokenBytes is the shortest operator token.
	MinOperatorTokenBytes = 16
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
)

// Errors Authenticate returns; httpapi answers both with 401.
var (
	// ErrNoToken: the request carries no bearer token.
	ErrNoToken = errors.New("no bearer token")
	// ErrInvalidToken: the token is neither an operator token nor a valid
	// user token (malformed, expired, badly signed, wrong audience, ...).
	// The error wrapping it says why, without the token.
	ErrInvalidToken = errors.New("invalid token")
)

// Caller is who sent a request.
type Caller struct {
	// Operator is true for an operator token; UserID is then 0.
	Operator bool
	// UserID is the user a user token speaks for (its sub).
	UserID int64
}

// Config is what an Authenticator accepts. At least one operator token or
// one user key is required.
type Config struct {
	// OperatorTokens are the opaque operator tokens, all valid at once (so
	// one can be rotated in before the old is removed); each at least
	// MinOperatorTokenBytes.
	OperatorTokens []string
	// HS256Secret verifies HS256 user tokens; at least MinSecretBytes.
	HS256Secret []byte
	// PublicKeys verify RS256 (RSA), ES256 (P-256) and EdDSA (Ed25519)
	// user tokens, tried in turn; ParsePEM and ParseJWKS build them.
	PublicKeys []Key
	// Audience, if set, must be among the token's aud.
	Audience string
	// Issuer, if set, must be the token's iss.
	Issuer string
	// Leeway is the clock skew allowed; default DefaultLeeway.
	Leeway time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Authenticator tells callers apart; it is safe for concurrent use.
type Authenticator struct {
	operators [][sha256.Size]byte
	secret    []byte
	keys      []Key
	parser    *jwt.Parser
}

// New checks cfg and returns its Authenticator.
func New(cfg Config) (*Authenticator, error) {
	if len(cfg.OperatorTokens) == 0 && len(cfg.HS256Secret) == 0 && len(cfg.PublicKeys) == 0 {
		return nil, errors.New("auth: no operator token and no user key configured")
	}
	a := &Authenticator{keys: cfg.PublicKeys}
	for i, t := range cfg.OperatorTokens {
		if len(t) < MinOperatorTokenBytes {
			return nil, fmt.Errorf("auth: operator token %d is %d bytes, want at least %d", i+1, len(t), MinOperatorTokenBytes)
		}
		a.operators = append(a.operators, sha256.Sum256([]byte(t)))
	}
	if n := len(cfg.HS256Secret); n > 0 {
		if n < MinSecretBytes {
			return nil, fmt.Errorf("auth: the HS256 secret is %d bytes, want at least %d", n, MinSecretBytes)
		}
		a.secret = cfg.HS256Secret
	}
	// Only the algorithms of the configured keys are valid: "none" never
	// is, and neither is HS256 without a secret.
	var methods []string
	if a.secret != nil {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	for _, alg := range []string{algRS256, algES256, algEdDSA} {
		for _, k := range a.keys {
			if k.alg == alg {
				methods = append(methods, alg)
				break
			}
		}
	}
	leeway := cfg.Leeway
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithStrictDecoding(),
	}
	if cfg.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	a.parser = jwt.NewParser(opts...)
	return a, nil
}

// Authenticate reads an Authorization header value ("Bearer <token>") and
// returns its caller; ErrNoToken when there is no bearer token, an error
// wrapping ErrInvalidToken when the token is not accepted.
func (a *Authenticator) Authenticate(header string) (Caller, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Caller{}, ErrNoToken
	}
	if token = strings.TrimSpace(token); token == "" {
		return Caller{}, ErrNoToken
	}
	if a.operator(token) {
		return Caller{Operator: true}, nil
	}
	user, err := a.user(token)
	if err != nil {
		return Caller{}, err
	}
	return Caller{UserID: user}, nil
}

// operator compares token with every operator token, in constant time.
func (a *Authenticator) operator(token string) bool {
	sum := sha256.Sum256([]byte(token))
	match := 0
	for i := range a.operators {
		match |= subtle.ConstantTimeCompare(sum[:], a.operators[i][:])
	}
	return match == 1
}

// user verifies a user JWT and returns its sub.
func (a *Authenticator) user(token string) (int64, error) {
	if a.secret == nil && len(a.keys) == 0 {
		return 0, fmt.Errorf("%w: not an operator token, and no user keys are configured", ErrInvalidToken)
	}
	var claims jwt.RegisteredClaims
	if _, err := a.parser.ParseWithClaims(token, &claims, a.keyFor); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	id, err := ParseSubject(claims.Subject)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return id, nil
}

// keyFor gives the parser the keys a token may be verified with: only
// keys of its algorithm, and with a kid only the keys of that kid.
func (a *Authenticator) keyFor(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if alg == jwt.SigningMethodHS256.Alg() {
		return a.secret, nil
	}
	kid, hasKid := t.Header["kid"].(string)
	var set jwt.VerificationKeySet
	for _, k := range a.keys {
		// A PEM key has no kid and is tried whatever the token names.
		if k.alg != alg || (hasKid && k.fromJWKS && k.ID != kid) {
			continue
		}
		set.Keys = append(set.Keys, k.key)
	}
	if len(set.Keys) == 0 {
		if hasKid {
			return nil, fmt.Errorf("no %s key with kid %q", alg, kid)
		}
		return nil, fmt.Errorf("no %s key", alg)
	}
	return set, nil
}

// ParseSubject parses a sub claim as a user id: canonical decimal digits
// of a positive 64-bit integer.
func ParseSubject(sub string) (int64, error) {
	id, err := strconv.ParseInt(sub, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != sub {
		return 0, errors.New("sub is not a user id (a positive decimal integer)")
	}
	return id, nil
}
