package console

import (
	"context"
	"errors"
	"time"

	dto "github.com/prometheus/client_model/go"

	"couponpush/cluster"
	"couponpush/queue"
	"couponpush/trace"
)

// Queues is what the console reads and changes in Redis; *queue.Client is
// one.
type Queues interface {
	// LayoutStatus reads the recorded layout and a move's progress.
	LayoutStatus(ctx context.Context) (st queue.LayoutStatus, found bool, err error)
	// Inspect reads queues 0..span-1.
	Inspect(ctx context.Context, span int) ([]queue.QueueInfo, error)
	// Time is the Redis clock.
	Time(ctx context.Context) (time.Time, error)
	// Paused reports the cluster's pause flag.
	Paused(ctx context.Context) (bool, error)
	// Pause sets the pause flag; Resume clears it.
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	// Replay puts queue q's dead letters back in flight (all with no
	// pushes), returning how many went back.
	Replay(ctx context.Context, q int, pushes []queue.DeadPush) (int, error)
}

// Cluster is what the console reads and changes in Consul; *cluster.Client
// is one.
type Cluster interface {
	// Workers lists serviceName's instances with their health and Meta
	// (roles, ops_addr).
	Workers(ctx context.Context, serviceName string) ([]cluster.Worker, error)
	// QueueCount reads N and its modify index.
	QueueCount(ctx context.Context) (n int, modifyIndex uint64, found bool, err error)
	// SetQueueCount writes N with check-and-set on cas.
	SetQueueCount(ctx context.Context, n int, cas uint64) (ok bool, err error)
	// QueueCountKey is N's KV key, for messages.
	QueueCountKey() string
}

// Template is a live template as the console shows it.
type Template struct {
	ID        int64
	Name      string
	Stock     int64
	GrabStart time.Time
	GrabEnd   time.Time
}

// Subscribers counts one template's subscriptions by status.
type Subscribers struct {
	Pending, Sent, Cancelled int64
	// FirstPending is the earliest push_at of a pending one; zero when none.
	FirstPending time.Time
}

// Audit is one entry of the audit log.
type Audit struct {
	ID       int64
	At       time.Time
	Operator string // the token's fingerprint (Fingerprint)
	Action   string // pause | resume | set_queue_count | replay_dead_letters
	Detail   string // what it was asked, e.g. "N 4 -> 8"
	Result   string // started | ok | failed
	Message  string // what came of it
}

// Store is what the console reads and writes in MySQL; NewSQLStore makes
// one.
type Store interface {
	// LiveTemplates lists up to max templates whose grab end is after
	// since, by grab start.
	LiveTemplates(ctx context.Context, since time.Time, max int) ([]Template, error)
	// Subscribers counts the subscriptions of each template in ids.
	Subscribers(ctx context.Context, ids []int64) (map[int64]Subscribers, error)
	// Issued counts the coupons of each template in ids.
	Issued(ctx context.Context, ids []int64) (map[int64]int64, error)
	// BeginAudit writes a started entry and returns its id.
	BeginAudit(ctx context.Context, a Audit) (int64, error)
	// SettleAudit sets an entry's result and message.
	SettleAudit(ctx context.Context, id int64, result, message string) error
	// AuditLog lists the newest entries first, up to limit.
	AuditLog(ctx context.Context, limit int) ([]Audit, error)
}

// Stock reads the coupons a template can still issue (its Redis
// sub-stocks).
type Stock interface {
	Remaining(ctx context.Context, templateID int64) (int64, error)
}

// Tracer reads one user's trace (package trace).
type Tracer interface {
	Trace(ctx context.Context, userID int64) (trace.User, error)
}

// Scraper reads one worker's /metrics at addr (host:port).
type Scraper interface {
	Scrape(ctx context.Context, addr string) (map[string]*dto.MetricFamily, error)
}

// Deps are the console's data sources.
type Deps struct {
	// Operator reports whether token is an operator token. Required.
	Operator func(token string) bool
	Queues   Queues  // required
	Cluster  Cluster // required
	Store    Store   // required
	Stock    Stock   // required
	Tracer   Tracer  // required
	// Scraper reads the workers' metrics; default NewHTTPScraper().
	Scraper Scraper
	// Count, if set, is the queue count N this worker follows (Consul's,
	// or the default while the key is absent). While Redis has no layout
	// recorded (N never changed), it names the queues to show.
	Count func() int
}

func (d Deps) check() error {
	switch {
	case d.Operator == nil:
		return errors.New("console: no operator check")
	case d.Queues == nil, d.Cluster == nil, d.Store == nil, d.Stock == nil, d.Tracer == nil:
		return errors.New("console: a data source is missing (queues, cluster, store, stock and tracer are required)")
	}
	return nil
}
