package httpapi

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"couponpush/migrate"
	"couponpush/queue"
	"couponpush/subscription"
	"couponpush/template"
)

type nopIndex struct{}

func (nopIndex) Add(context.Context, queue.Entry) error    { return nil }
func (nopIndex) Cancel(context.Context, queue.Entry) error { return nil }

// BenchmarkPutSubscription measures durable new subscriptions over HTTP
// (loopback, keep-alive) from 64 concurrent clients, against MariaDB as
// enginetest runs it (innodb_flush_log_at_trx_commit=1, data on disk), with
// the index stubbed out.
//
//	go test -run '^$' -bench BenchmarkPutSubscription -benchtime 40000x ./httpapi/
func BenchmarkPutSubscription(b *testing.B) {
	db, err := sql.Open("mysql", newDSN(b))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const clients = 64
	db.SetMaxOpenConns(clients)
	db.SetMaxIdleConns(clients)
	ctx := context.Background()
	if _, err := migrate.Up(ctx, db); err != nil {
		b.Fatal(err)
	}
	store, err := template.NewStore(db, template.StoreConfig{})
	if err != nil {
		b.Fatal(err)
	}
	days := 7
	tpl, err := store.Create(ctx, template.Draft{Name: "hot", Type: template.Fixed, Value: 500, Stock: 1e6,
		GrabStart: grabStart, GrabEnd: grabStart.Add(time.Hour), ValidDays: &days})
	if err != nil {
		b.Fatal(err)
	}
	cache, err := template.NewCache(store, template.CacheConfig{})
	if err != nil {
		b.Fatal(err)
	}
	subs, err := subscription.NewService(db, cache, nopIndex{}, subscription.Config{Now: func() time.Time { return base }})
	if err != nil {
		b.Fatal(err)
	}
	defer subs.Close()
	h, err := New(Config{Templates: cache, Subscriptions: subs, AuthOff: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()

	var user atomic.Int64
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			url := fmt.Sprintf("%s/v1/subscriptions/%d/%d", srv.URL, user.Add(1), tpl.ID)
			req, _ := http.NewRequest(http.MethodPut, url, nil)
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				b.Errorf("PUT = %d", res.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "puts/s")
}
