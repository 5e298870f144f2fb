package abuse

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"

	"couponpush/internal/enginetest"
)

// BenchmarkAdmit is Admit for a new user each time, from one IP, as the
// trust bench sends them (cmd/trustbench): with limits (checked) and
// without (unchecked: the blocks only), from 64 goroutines at once so the
// checks share pipelines. Its CPU per op (this process) beside
// redis-server's is what the limits cost.
func BenchmarkAdmit(b *testing.B) {
	for _, bc := range []struct {
		name   string
		limits map[Rule]Limit
	}{
		{"unchecked", nil},
		{"checked", map[Rule]Limit{{Claim, User}: {Rate: 10, Burst: 20}, {Claim, IP}: {Rate: 1_000_000, Burst: 1_000_000}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rdb := newClient(b, []string{enginetest.RedisAddr(b)})
			g, err := New(rdb, Config{Prefix: enginetest.Prefix(b), Limits: bc.limits})
			if err != nil {
				b.Fatal(err)
			}
			ip := netip.MustParseAddr("127.0.0.1")
			var users atomic.Int64
			b.SetParallelism(32)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := g.Admit(context.Background(), Claim, users.Add(1), ip); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
