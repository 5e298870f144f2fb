package config

import (
	"net"
	"strings"

	"couponpush/auth"
)

// Values of Worker.Auth.
const (
	AuthOn  = "on"  // every route but the probes needs a token (the default)
	AuthOff = "off" // no checks at all; only when every listener is on loopback
)

// keysHelp says how to give the worker its keys; Validate's messages end
// with it.
const keysHelp = "give operators a token (COUPONPUSH_OPERATOR_TOKEN or COUPONPUSH_OPERATOR_TOKENS_FILE) " +
	"and users a key (COUPONPUSH_JWT_HS256_SECRET_FILE, COUPONPUSH_JWT_PUBLIC_KEYS or COUPONPUSH_JWT_JWKS); " +
	"see docs/operations.md \"Giving the worker its keys\"; for a local run on loopback, COUPONPUSH_AUTH=off"

// listener is one address the worker listens on.
type listener struct{ field, addr string }

// listeners are every address the worker listens on. A new listener adds
// itself here, so that auth off stays refused off loopback.
func (w Worker) listeners() []listener {
	return []listener{{"http_addr", w.HTTPAddr}, {"ops_addr", w.OpsAddr}}
}

// AuthSources are where the worker's tokens and keys come from, for
// auth.Load.
func (w Worker) AuthSources() auth.Sources {
	return auth.Sources{
		OperatorToken:      w.OperatorToken.Reveal(),
		OperatorTokensFile: w.OperatorTokensFile,
		HS256Secret:        w.JWTHS256Secret.Reveal(),
		HS256SecretFile:    w.JWTHS256SecretFile,
		PublicKeysFile:     w.JWTPublicKeys,
		JWKSFile:           w.JWTJWKS,
		Audience:           w.JWTAudience,
		Issuer:             w.JWTIssuer,
	}
}

// validateAuth checks the identity settings. Its messages never carry a
// token or a secret.
func (w Worker) validateAuth(bad func(field, format string, args ...any)) {
	switch w.Auth {
	case AuthOff:
		for _, l := range w.listeners() {
			if !loopback(l.addr) {
				bad("auth", "off is refused: %s %q is not on loopback (127.0.0.1, ::1 or localhost), "+
					"so anyone who reaches it could act for any user; leave auth on and give the worker its keys "+
					"(docs/operations.md \"Giving the worker its keys\")", l.field, l.addr)
			}
		}
	case AuthOn:
		if w.HasRole(RoleAPI) && w.AuthSources().Empty() {
			bad("auth", "on (the default) but no token or key is configured: %s", keysHelp)
		}
	default:
		bad("auth", "%q is not on or off", w.Auth)
	}
	if w.JWTHS256Secret != "" && w.JWTHS256SecretFile != "" {
		bad("jwt_hs256_secret", "give it once: by value or by file (jwt_hs256_secret_file), not both")
	}
	if n := len(w.JWTHS256Secret); n > 0 && n < auth.MinSecretBytes {
		bad("jwt_hs256_secret", "is %d bytes, want at least %d", n, auth.MinSecretBytes)
	}
	if n := len(w.OperatorToken); n > 0 && n < auth.MinOperatorTokenBytes {
		bad("operator_token", "is %d bytes, want at least %d", n, auth.MinOperatorTokenBytes)
	}
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
