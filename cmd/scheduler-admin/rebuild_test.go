package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/client"
	"couponpush/config"
	"couponpush/internal/enginetest"
	"couponpush/internal/pushtest"
	"couponpush/queue"
	"couponpush/worker"
)

func TestRebuildCommand(t *testing.T) {
	parallel(t)
	e := newEngines(t)
	ctx := t.Context()
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	for u := int64(1); u <= 50; u++ {
		e.subscribe(t, u, 1, at, "pending", 1, "")
	}
	for u := int64(51); u <= 55; u++ {
		e.subscribe(t, u, 1, at, "sent", 2, fmt.Sprintf("p%d", u))
	}
	const n = 4
	r := e.queue.NewRouter(func() int { return n })
	for u := int64(1); u <= 10; u++ {
		if err := r.Add(ctx, queue.Entry{UserID: u, TemplateID: 1, PushAt: at, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}

	// No layout recorded and no N in Consul: the command asks for -queues.
	runCLI(t, append(e.flags(), "rebuild")...).want(t, 1, "", "pass -queues N")

	res := runCLI(t, append(e.flags(), "rebuild", "-queues", "4", "-batch", "7", "-json")...)
	var out rebuildJSON
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || res.code != 0 {
		t.Fatalf("rebuild -json: %v %+v", err, res)
	}
	if out.Read != 50 || out.Indexed != 40 || out.Present != 10 || out.Taken != 0 || out.Layout == nil || out.Layout.Recorded || out.Layout.To != n {
		t.Fatalf("rebuild -json = %+v (layout %+v)", out, out.Layout)
	}
	if !strings.Contains(res.stderr, "rebuild: 50/50 (100%)") {
		t.Errorf("with -json the progress goes to stderr; got %q", res.stderr)
	}
	var entries []queue.Entry
	for u := int64(1); u <= 55; u++ {
		entries = append(entries, queue.Entry{UserID: u, TemplateID: 1})
	}
	states, err := e.queue.States(ctx, queue.Layout{From: n, To: n, Span: n}, entries)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range states {
		if want := map[bool]queue.EntryState{true: queue.StatePending, false: 0}[i < 50]; s != want {
			t.Errorf("user %d: state %v, want %v (sent rows are never indexed)", i+1, s, want)
		}
	}

	// Again, with N from Consul and a table: everything is there already.
	if ok, err := e.consul.SetQueueCount(ctx, n, 0); err != nil || !ok {
		t.Fatal(ok, err)
	}
	res = runCLI(t, append(e.flags(), "rebuild")...)
	res.want(t, 0, "none recorded in Redis; writing as 4 queues", "")
	res.want(t, 0, "50 pending rows read; 0 indexed, 50 already present, 0 taken", "")
	res.want(t, 0, "rebuild: 0/50 (0%)", "")
}

// TestRebuildAfterFlush proves R8 end to end: a worker pushes a few
// thousand reminders spread over about 20 s; its Redis is flushed in the
// middle, and `scheduler-admin rebuild` brings the index back from MySQL.
// Every reminder is still pushed, each (user, template) under one push_id,
// and none whose sent-mark was in MySQL before the flush is pushed again.
func TestRebuildAfterFlush(t *testing.T) {
	parallel(t)
	e := newEngines(t)
	ctx := context.Background()
	rs := enginetest.StartRedis(t) // this test's own: it is flushed
	nsqTCP, _ := enginetest.NSQD(t)
	const n = 8

	col, err := pushtest.NewCollector(nsqTCP, e.prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(col.Stop)

	var logs syncBuffer
	cfg := config.Worker{
		Roles:             []string{config.RoleAPI, config.RoleScheduler},
		HTTPAddr:          enginetest.FreeAddr(t),
		OpsAddr:           "127.0.0.1:0",
		RedisAddrs:        []string{rs.Addr},
		RedisPrefix:       e.prefix,
		MySQLDSN:          e.dsn,
		NSQDAddr:          nsqTCP,
		Topic:             e.prefix,
		ConsulAddr:        e.consulAddr,
		ConsulPrefix:      e.prefix,
		ServiceName:       strings.ToLower(strings.ReplaceAll(e.prefix, "_", "-")),
		WorkerID:          "r8",
		DefaultQueueCount: n,
		// One reminder per push, so a re-send after the flush is the same
		// push whatever was due beside it.
		MergeWindow: config.Duration(time.Millisecond),
		Lease:       config.Duration(2 * time.Second),
		LeaseRenew:  config.Duration(500 * time.Millisecond),
		LogLevel:    "warn",
		Auth:        config.AuthOff,
		// The test subscribes from one IP as fast as it can.
		RateLimits: config.RateLimitsOff,
	}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := worker.Start(ctx, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Stop(); err != nil {
			t.Errorf("worker stop: %v", err)
		}

		if t.Failed() {
			t.Logf("worker log:\n%s", logs.String())
		}
	})
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	api := "http://" + cfg.HTTPAddr

	// One template; each subscription asks for its own lead, so push times
	// spread over 15 s to 35 s from now, one second apart.
	grab := time.Now().Add(100 * time.Second).Truncate(time.Second)
	c, err := client.New(client.Config{BaseURL: api, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	draft := client.TemplateDraft{Name: "r8", Type: client.TypeFixed, Value: 500, Stock: 1000000,
		GrabStart: grab, GrabEnd: grab.Add(time.Hour), ValidDays: 7}
	tmpl, err := c.CreateTemplate(ctx, draft)
	if err != nil {
		t.Fatal(err)
	}
	draft.Name, draft.Value = "r8-second", 100
	tmpl2, err := c.CreateTemplate(ctx, draft)
	if err != nil {
		t.Fatal(err)
	}

	type sub struct {
		pair pushtest.Pair
		lead int64
	}
	var subs []sub
	const users = 2500
	for u := int64(1); u <= users; u++ {
		subs = append(subs, sub{pushtest.Pair{UserID: u, TemplateID: tmpl.ID}, 65 + u%21})
		if u%5 == 0 { // a second reminder, due at another second
			subs = append(subs, sub{pushtest.Pair{UserID: u, TemplateID: tmpl2.ID}, 65 + (u+10)%21})
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(subs)); i = next.Add(1) - 1 {
				s := subs[i]
				_, created, err := c.Subscribe(ctx, s.pair.UserID, s.pair.TemplateID, client.SubscribeRequest{LeadSeconds: s.lead})
				if err == nil && !created {
					err = fmt.Errorf("subscription %+v answered 200, not 201", s.pair)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	t.Logf("subscribed %d reminders due from %v to %v", len(subs), grab.Add(-85*time.Second).Format(time.TimeOnly), grab.Add(-65*time.Second).Format(time.TimeOnly))

	db := e.db
	countSent := func() int {
		var c int
		if err := db.QueryRow(`SELECT COUNT(*) FROM subscriptions WHERE status = 'sent'`).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Flush while some pushes that went out have no sent-mark in MySQL yet
	// (marks follow deliveries by about 200 ms): those are the reminders R8
	// lets go out again, under their first push_id.
	enginetest.Eventually(t, "some reminders pushed, most marked sent", 60*time.Second, func() bool {
		sent := countSent()
		return sent >= 300 && pushtest.Summarise(col.All()).Unique()-sent >= 20
	})
	sentBefore := map[pushtest.Pair]string{}
	rows, err := db.Query(`SELECT user_id, template_id, push_id FROM subscriptions WHERE status = 'sent'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k pushtest.Pair
		var id string
		if err := rows.Scan(&k.UserID, &k.TemplateID, &id); err != nil {
			t.Fatal(err)
		}
		sentBefore[k] = id
	}
	rows.Close()
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	delivered := pushtest.Summarise(col.All()).Unique()
	t.Logf("flushed Redis with %d reminders marked sent and %d delivered of %d", len(sentBefore), delivered, len(subs))
	if len(sentBefore) >= len(subs) || delivered >= len(subs) {
		t.Fatalf("the flush came after the schedule (%d sent, %d delivered)", len(sentBefore), delivered)
	}

	res := runCLI(t, append(e.flags("-redis", rs.Addr, "-queues", fmt.Sprint(n)), "rebuild", "-json")...)
	var out rebuildJSON
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || res.code != 0 {
		t.Fatalf("rebuild: %v %+v", err, res)
	}
	t.Logf("rebuild: %+v", out)
	if out.Read == 0 || out.Indexed == 0 {
		t.Fatalf("rebuild re-indexed nothing: %+v", out)
	}

	enginetest.Eventually(t, "every reminder pushed", 90*time.Second, func() bool {
		return pushtest.Summarise(col.All()).Unique() >= len(subs)
	})
	enginetest.Eventually(t, "every reminder marked sent in MySQL", 60*time.Second, func() bool {
		return countSent() == len(subs)
	})
	rep := pushtest.Summarise(col.All())
	for _, s := range subs {
		if len(rep.Reminders[s.pair]) == 0 {
			t.Fatalf("reminder %v never pushed", s.pair)
		}
	}
	if rep.Unique() != len(subs) {
		t.Fatalf("pushed %d distinct reminders, want %d", rep.Unique(), len(subs))
	}
	if len(rep.IDConflicts) > 0 {
		t.Fatalf("%d reminders pushed under more than one push_id, e.g. %v", len(rep.IDConflicts), rep.IDConflicts[0])
	}
	for k, id := range sentBefore {
		if ids := rep.Reminders[k]; len(ids) != 1 || ids[0] != id {
			t.Fatalf("reminder %v was marked sent as %s before the flush, and pushed as %v", k, id, ids)
		}
	}
	resent := 0
	for _, ids := range rep.Reminders {
		if len(ids) > 1 {
			resent++
		}
	}
	t.Logf("%d deliveries; %d reminders pushed again (their sent-mark had not reached MySQL), each under its first push_id", rep.Deliveries, resent)
}

// TestRedisCluster runs the Redis commands against a real Redis Cluster,
// named by a comma-separated -redis list.
func TestRedisCluster(t *testing.T) {
	parallel(t)
	e := newEngines(t)
	seeds := strings.Join(enginetest.RedisCluster(t), ",")
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	for u := int64(1); u <= 20; u++ {
		e.subscribe(t, u, 2, at, "pending", 1, "")
	}
	flags := e.flags("-redis", seeds, "-queues", "4")
	res := runCLI(t, append(flags, "rebuild", "-json")...)
	var out rebuildJSON
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || res.code != 0 || out.Read != 20 || out.Indexed != 20 {
		t.Fatalf("rebuild on a cluster: %+v %v %+v", out, err, res)
	}
	res = runCLI(t, append(flags, "queues", "-json")...)
	var qs queuesJSON
	if err := json.Unmarshal([]byte(res.stdout), &qs); err != nil || res.code != 0 || len(qs.Queues) != 4 {
		t.Fatalf("queues on a cluster: %v %+v", err, res)
	}
	var users int64
	for _, q := range qs.Queues {
		users += q.Users
	}
	if users != 20 {
		t.Errorf("users over the cluster's queues = %d, want 20", users)
	}
	runCLI(t, append(flags, "user", "7")...).want(t, 0, "pending v1", "")
	runCLI(t, append(flags, "pause")...).want(t, 0, "paused", "")
	runCLI(t, append(flags, "resume")...).want(t, 0, "resumed", "")
}
