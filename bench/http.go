package bench

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/go-sql-driver/mysql" // the MySQL driver, to count durable rows

	"couponpush/client"
)

// httpClient is the transport every bench client shares.
var httpClient = &http.Client{
	Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256},
	Timeout:   30 * time.Second,
}

// apiClient is a client of the API at base on the shared transport, with
// token as its bearer token. Its claims are sent once, never resent: a
// load counts every answer as it comes.
func apiClient(base, token string) (*client.Client, error) {
	return client.New(client.Config{BaseURL: base, Token: token, HTTPClient: httpClient, ClaimAttempts: 1})
}

// subscribe runs PUTs of new subscriptions from clients goroutines for d and
// returns how many were answered 201 and then found in MySQL.
func (s *stack) subscribe(ctx context.Context, clients int, d time.Duration) (int, time.Duration, error) {
	tid, err := s.template(ctx, time.Now().Add(time.Hour))
	if err != nil {
		return 0, 0, err
	}
	var next, ok atomic.Int64
	next.Store(20_000_000)
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	var first error
	var mu sync.Mutex
	begin := time.Now()
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				u := next.Add(1)
				tok, err := s.tokens.User(u) // each user subscribes with their own token
				if err == nil {
					var created bool
					_, created, err = s.api.Subscribe(ctx, u, tid, client.SubscribeRequest{}, client.WithToken(tok), client.Discard())
					if err == nil && !created {
						err = fmt.Errorf("PUT of a new subscription of user %d answered 200, not 201", u)
					}
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if first != nil {
		return 0, 0, first
	}
	db, err := sql.Open("mysql", s.cfg.MySQLDSN)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	var rows int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM subscriptions WHERE template_id = ?", tid).Scan(&rows); err != nil {
		return 0, 0, err
	}
	if rows != ok.Load() {
		return 0, 0, fmt.Errorf("%d PUTs answered 201 but MySQL holds %d rows", ok.Load(), rows)
	}
	return int(rows), elapsed, nil
}
