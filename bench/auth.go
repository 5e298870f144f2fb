package bench

import (
	"couponpush/config"
	"couponpush/internal/devtoken"
)

// identity returns the tokens the bench sends: none when off (the workers
// then run with auth off, on loopback), else a fresh operator token and
// HS256 secret, so requests pay for real verification.
func identity(off bool) (devtoken.Tokens, error) {
	if off {
		return devtoken.Tokens{}, nil
	}
	return devtoken.New()
}

// withIdentity gives a worker config the tokens' keys, or auth off.
func withIdentity(wc config.Worker, t devtoken.Tokens) config.Worker {
	if t.Secret == nil {
		wc.Auth = config.AuthOff
		return wc
	}
	wc.OperatorToken, wc.JWTHS256Secret = config.Secret(t.Operator), config.Secret(t.Secret)
	return wc
}

// authName names the mode for the report's first line.
func authName(t devtoken.Tokens) string {
	if t.Secret == nil {
		return "auth off"
	}
	return "auth on (HS256 user tokens)"
}
