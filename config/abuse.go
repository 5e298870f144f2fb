package config

import (
	"net/netip"
	"strings"
	"time"

	"couponpush/abuse"
)

// Bounds of the abuse limits that Validate enforces.
const (
	// MaxLimitRate bounds every limit's rate and burst.
	MaxLimitRate = 1_000_000
	// MaxAutoBlockFor is the longest automatic block (abuse.MaxBlock).
	MaxAutoBlockFor = 30 * 24 * time.Hour
)

// withAbuseDefaults sets the abuse limits' defaults (see Worker).
func (w Worker) withAbuseDefaults() Worker {
	setDefault(&w.RateLimits, RateLimitsOn)
	setDefault(&w.LimitClaimUserRate, 3)
	setDefault(&w.LimitClaimUserBurst, 6)
	setDefault(&w.LimitClaimIPRate, 300)
	setDefault(&w.LimitClaimIPBurst, 1000)
	setDefault(&w.LimitSubscribeUserRate, 5)
	setDefault(&w.LimitSubscribeUserBurst, 20)
	setDefault(&w.LimitSubscribeIPRate, 300)
	setDefault(&w.LimitSubscribeIPBurst, 1000)
	setDefault(&w.AutoBlockTrips, 30)
	setDefault(&w.AutoBlockWindow, Duration(time.Minute))
	setDefault(&w.AutoBlockFor, Duration(10*time.Minute))
	setDefault(&w.LimitLease, Duration(20*time.Millisecond))
	return w
}

// Values of Worker.RateLimits.
const (
	RateLimitsOn  = "on"  // rate limits and automatic blocks apply (the default)
	RateLimitsOff = "off" // none apply (benches, tests); operators' blocks still do
)

// validateAbuse checks the abuse limits.
func (w Worker) validateAbuse(bad func(string, string, ...any)) {
	if w.RateLimits != RateLimitsOn && w.RateLimits != RateLimitsOff {
		bad("rate_limits", "%q is not on or off", w.RateLimits)
	}
	for _, p := range w.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			bad("trusted_proxies", "%q is not a CIDR or an IP address", p)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"limit_claim_user_rate", w.LimitClaimUserRate}, {"limit_claim_user_burst", w.LimitClaimUserBurst},
		{"limit_claim_ip_rate", w.LimitClaimIPRate}, {"limit_claim_ip_burst", w.LimitClaimIPBurst},
		{"limit_subscribe_user_rate", w.LimitSubscribeUserRate}, {"limit_subscribe_user_burst", w.LimitSubscribeUserBurst},
		{"limit_subscribe_ip_rate", w.LimitSubscribeIPRate}, {"limit_subscribe_ip_burst", w.LimitSubscribeIPBurst},
		{"auto_block_trips", w.AutoBlockTrips},
	} {
		checkRange(bad, f.name, f.v, 1, MaxLimitRate)
	}
	if w.LimitLease < Duration(time.Millisecond) || w.LimitLease > Duration(abuse.MaxLease) {
		bad("limit_lease", "must be between 1ms and %v, got %v", abuse.MaxLease, w.LimitLease)
	} else {
		for _, l := range []struct {
			name        string
			rate, burst int
		}{
			{"claim_user", w.LimitClaimUserRate, w.LimitClaimUserBurst}, {"claim_ip", w.LimitClaimIPRate, w.LimitClaimIPBurst},
			{"subscribe_user", w.LimitSubscribeUserRate, w.LimitSubscribeUserBurst}, {"subscribe_ip", w.LimitSubscribeIPRate, w.LimitSubscribeIPBurst},
		} {
			if err := abuse.CheckLease(abuse.Limit{Rate: l.rate, Burst: l.burst}, w.LimitLease.Duration()); err != nil {
				bad("limit_lease", "limit_%s: %v", l.name, err)
			}
		}
	}
	if w.AutoBlockWindow <= 0 {
		bad("auto_block_window", "must be positive, got %v", w.AutoBlockWindow)
	}
	if w.AutoBlockFor < Duration(time.Second) || w.AutoBlockFor > Duration(MaxAutoBlockFor) {
		bad("auto_block_for", "must be between 1s and %v, got %v", MaxAutoBlockFor, w.AutoBlockFor)
	}
}

// TrustedProxyPrefixes returns TrustedProxies parsed; an address is a
// prefix of its full length. It skips what Validate refuses.
func (w Worker) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range w.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
