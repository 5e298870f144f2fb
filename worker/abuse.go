package worker

import (
	"couponpush/abuse"
	"couponpush/config"
)

// newGuard builds the API's abuse guard from the config: the rate limits
// and automatic blocks unless rate_limits is off; blocks always.
func (w *Worker) newGuard() (*abuse.Guard, error) {
	cfg := w.cfg
	c := abuse.Config{Prefix: cfg.RedisPrefix, Logger: w.log}
	if cfg.RateLimits != config.RateLimitsOff {
		c.Limits = limits(cfg)
		c.AutoBlock = abuse.AutoBlock{Trips: cfg.AutoBlockTrips, Window: cfg.AutoBlockWindow.Duration(), For: cfg.AutoBlockFor.Duration()}
		c.Lease = cfg.LimitLease.Duration()
	}
	w.m.abuseHooks(&c)
	return abuse.New(w.rdb, c)
}

func limits(cfg config.Worker) map[abuse.Rule]abuse.Limit {
	return map[abuse.Rule]abuse.Limit{
		{Action: abuse.Claim, Kind: abuse.User}:     {Rate: cfg.LimitClaimUserRate, Burst: cfg.LimitClaimUserBurst},
		{Action: abuse.Claim, Kind: abuse.IP}:       {Rate: cfg.LimitClaimIPRate, Burst: cfg.LimitClaimIPBurst},
		{Action: abuse.Subscribe, Kind: abuse.User}: {Rate: cfg.LimitSubscribeUserRate, Burst: cfg.LimitSubscribeUserBurst},
		{Action: abuse.Subscribe, Kind: abuse.IP}:   {Rate: cfg.LimitSubscribeIPRate, Burst: cfg.LimitSubscribeIPBurst},
	}
}
