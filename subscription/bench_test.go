package subscription

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"couponpush/queue"
)

type nopIndex struct{}

func (nopIndex) Add(context.Context, queue.Entry) error    { return nil }
func (nopIndex) Cancel(context.Context, queue.Entry) error { return nil }

// BenchmarkSubscribe measures new, durable subscriptions (one autocommit
// INSERT each, innodb_flush_log_at_trx_commit=1 as enginetest runs MariaDB)
// from 64 concurrent goroutines, with the index stubbed out.
//
//	go test -run '^$' -bench BenchmarkSubscribe -benchtime 20000x ./subscription/
func BenchmarkSubscribe(b *testing.B) {
	e := newEnv(b)
	s := newService(b, e.db, e.cache, nopIndex{}, Config{Now: func() time.Time { return base }})
	defer s.Close()
	var user atomic.Int64
	const clients = 64
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, created, err := s.Subscribe(ctx, user.Add(1), e.template.ID, nil); err != nil || !created {
				b.Errorf("Subscribe: created=%v err=%v", created, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "subscribes/s")
}
