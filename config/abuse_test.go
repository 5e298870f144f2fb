package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidateAbuse(t *testing.T) {
	tests := []struct {
		name   string
		modify func(w *Worker)
		want   string // substring of the error; "" means valid
	}{
		{"limits off ok", func(w *Worker) { w.RateLimits = "off" }, ""},
		{"limits neither on nor off", func(w *Worker) { w.RateLimits = "no" }, "rate_limits:"},
		{"trusted proxies ok", func(w *Worker) { w.TrustedProxies = []string{"10.0.0.0/8", "::1", "fd00::/8"} }, ""},
		{"bad trusted proxy", func(w *Worker) { w.TrustedProxies = []string{"10.0.0.0/33"} }, "trusted_proxies:"},
		{"negative rate", func(w *Worker) { w.LimitClaimUserRate = -1 }, "limit_claim_user_rate:"},
		{"burst too big", func(w *Worker) { w.LimitSubscribeIPBurst = MaxLimitRate + 1 }, "limit_subscribe_ip_burst:"},
		{"negative trips", func(w *Worker) { w.AutoBlockTrips = -3 }, "auto_block_trips:"},
		{"negative window", func(w *Worker) { w.AutoBlockWindow = -1 }, "auto_block_window:"},
		{"auto block too long", func(w *Worker) { w.AutoBlockFor = Duration(31 * 24 * time.Hour) }, "auto_block_for:"},
		{"auto block too short", func(w *Worker) { w.AutoBlockFor = Duration(time.Millisecond) }, "auto_block_for:"},
		{"lease too short", func(w *Worker) { w.LimitLease = Duration(time.Microsecond) }, "limit_lease:"},
		{"lease too long", func(w *Worker) { w.LimitLease = Duration(2 * time.Second) }, "limit_lease:"},
		{"lease over half a burst", func(w *Worker) { w.LimitLease = Duration(time.Second); w.LimitClaimIPBurst = 500 },
			"limit_lease: limit_claim_ip: a lease of 1s holds 300 tokens of a rate of 300, over half the burst 500"},
		{"lease of a slow limit ok", func(w *Worker) {
			w.LimitLease = Duration(time.Second)
			w.LimitClaimUserRate, w.LimitClaimUserBurst = 1, 1 // under 2 tokens a lease: not leased
			w.LimitClaimIPBurst, w.LimitSubscribeIPBurst = 600, 600
		}, ""},
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

func TestAbuseByEnvAndFlag(t *testing.T) {
	w, err := LoadWorker([]string{"-redis-addr", "r:6379", "-mysql-dsn", "u:p@tcp(h:3306)/db", "-nsqd-tcp", "n:4150",
		"-limit-claim-ip-rate", "50"}, env(map[string]string{
		"COUPONPUSH_RATE_LIMITS":         "off",
		"COUPONPUSH_AUTH":                "off",
		"COUPONPUSH_TRUSTED_PROXIES":     "10.1.0.0/16, 192.0.2.7",
		"COUPONPUSH_AUTO_BLOCK_FOR":      "1h",
		"COUPONPUSH_LIMIT_CLAIM_IP_RATE": "70",
		"COUPONPUSH_LIMIT_LEASE":         "50ms",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("192.0.2.7/32")}
	if w.RateLimits != "off" || w.LimitClaimIPRate != 50 || w.AutoBlockFor != Duration(time.Hour) ||
		!slices.Equal(w.TrustedProxyPrefixes(), want) || w.LimitClaimUserRate != 3 || w.LimitLease != Duration(50*time.Millisecond) {
		t.Errorf("loaded %+v", w)
	}
}
