package abuse

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/enginetest"
)

// BenchmarkAdmit is Admit of a claim for a new user each time, all from
// one IP, as the trust bench sends them (cmd/trustbench): with limits
// (checked: the user's at its default, the IP's far above the load) and
// without (unchecked: the blocks only), from 64 goroutines at once so the
// checks share pipelines. Beside the time per op it reports the CPU per
// op of this process (cpu-µs/op) and of redis-server (redis-µs/op); their
// difference between checked and unchecked is what the limits cost.
//
//	go test -run '^$' -bench BenchmarkAdmit -benchtime 100000x ./abuse/
func BenchmarkAdmit(b *testing.B) {
	for _, bc := range []struct {
		name   string
		limits map[Rule]Limit
	}{
		{"unchecked", nil},
		{"checked", map[Rule]Limit{{Claim, User}: {Rate: 10, Burst: 20}, {Claim, IP}: {Rate: 1_000_000, Burst: 1_000_000}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			addr := enginetest.RedisAddr(b)
			rdb := newClient(b, []string{addr})
			g, err := New(rdb, Config{Prefix: enginetest.Prefix(b), Limits: bc.limits})
			if err != nil {
				b.Fatal(err)
			}
			info := redis.NewClient(&redis.Options{Addr: addr})
			defer info.Close()
			ip := netip.MustParseAddr("127.0.0.1")
			var users atomic.Int64
			b.SetParallelism(32)
			b.ReportAllocs()
			cpu0, redis0 := selfCPU(b), redisCPU(b, info)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := g.Admit(context.Background(), Claim, users.Add(1), ip); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(float64((selfCPU(b)-cpu0).Microseconds())/n, "cpu-µs/op")
			b.ReportMetric(float64((redisCPU(b, info)-redis0).Microseconds())/n, "redis-µs/op")
		})
	}
}

func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the CPU time redis-server has used (user + system).
func redisCPU(b *testing.B, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var s float64
	for line := range strings.SplitSeq(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			s += f
		}
	}
	return time.Duration(s * float64(time.Second))
}
