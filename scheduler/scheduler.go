package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"couponpush/balance"
	"couponpush/push"
	"couponpush/queue"
)

// Index is the part of the queue index the scheduler drives.
type Index interface {
	DueQueues(ctx context.Context, t time.Time, max int) ([]int, error)
	NextWork(ctx context.Context) (time.Time, bool, error)
	// UrgentQueues and HighDue tell where high-priority work waits (see
	// queue.Client.UrgentQueues).
	UrgentQueues(ctx context.Context, t time.Time, max int) ([]int, error)
	HighDue(ctx context.Context, q int, t time.Time) (bool, error)
	Pop(ctx context.Context, l *queue.Lease, o queue.PopOptions) (queue.Popped, error)
	Ack(ctx context.Context, l *queue.Lease, ch queue.Chunk) (bool, error)
	AckAll(ctx context.Context, l *queue.Lease, chs []queue.Chunk) (int, error)
	Recover(ctx context.Context, l *queue.Lease, o queue.RecoverOptions) ([]queue.Chunk, error)
	SetNext(ctx context.Context, q int, next time.Time) error
	Marks(ctx context.Context, q int, t time.Time, max int) ([]queue.Marked, error)
	OldestMark(ctx context.Context, q int) (time.Time, error)
	Forget(ctx context.Context, q int, chunks []queue.Chunk) error
	// DeadLetter settles a chunk some of whose pushes can never be
	// published (see queue.Client.DeadLetter).
	DeadLetter(ctx context.Context, l *queue.Lease, ch queue.Chunk, unsent []queue.Unsent) (queue.Chunk, bool, error)
	// Prepare, Seal and Begin are the work taken ahead of due (see
	// prepare.go and queue.Client.Prepare).
	Prepare(ctx context.Context, l *queue.Lease, o queue.PrepareOptions) (queue.Prepared, error)
	Seal(ctx context.Context, l *queue.Lease, id string, encoded []byte) (bool, error)
	Begin(ctx context.Context, l *queue.Lease, o queue.BeginOptions) ([]queue.Begun, error)
	Time(ctx context.Context) (time.Time, error)
	Paused(ctx context.Context) (bool, error)
	Reconcile(ctx context.Context, n int, now time.Time) error
}

// Publisher sends pushes to the message center; nil means nsqd accepted all.
type Publisher interface {
	// PublishWhile publishes pushes if valid, asked right before they go
	// out, answers true; push.ErrWithheld otherwise.
	PublishWhile(ctx context.Context, pushes []push.Push, valid func() bool) error
	// Encode encodes pushes as PublishWhile would send them, for
	// PublishEncodedWhile to send later unchanged.
	Encode(pushes []push.Push) ([]byte, error)
	PublishEncodedWhile(ctx context.Context, encoded [][]byte, valid func() bool) error
}

// Templates tells a template's grab start, which every push item carries.
type Templates interface {
	// GrabStart returns templateID's grab start; an error wrapping
	// ErrNoTemplate when the template does not exist (its pushes are then
	// dead-lettered), any other error when it cannot be read now (retried).
	GrabStart(ctx context.Context, templateID int64) (time.Time, error)
}

// ErrNoTemplate is what Templates wraps for a template that does not exist:
// a push that carries it can never be built.
var ErrNoTemplate = errors.New("scheduler: template does not exist")

// Sent is one reminder whose push nsqd accepted.
type Sent struct {
	UserID, TemplateID int64
	PushID             string
	SentAt             time.Time
}

// Marker records sent reminders in MySQL. MarkSent must not keep sent after
// it returns: the marker reuses the slice for its next batch.
type Marker interface {
	MarkSent(ctx context.Context, sent []Sent) error
}

// Limits of a Config.
const (
	// MaxSlots bounds how many queues one scheduler works at once.
	MaxSlots = 1024
)

// Config configures a Scheduler. Zero values mean the defaults.
type Config struct {
	Count       func() int    // current queue count N; required
	MergeWindow time.Duration // default 10 s
	Tick        time.Duration // idle poll period; default 20 ms
	Deadline    time.Duration // in-flight redelivery deadline; default 10 s
	PopBatch    int           // users per pop, ≤ queue.MaxPopUsers; default 1000
	Slots       int           // queues worked at once, ≤ MaxSlots; default 4
	// DrainTimeout bounds how long Stop waits for publishes in progress.
	DrainTimeout time.Duration // default 15 s
	MarkBatch    int           // rows per MySQL sent-mark UPDATE; default 1000
	MarkInterval time.Duration // how long marks may wait to fill a batch; default 200 ms
	// OrphanMarkAge is how old an unmarked ack must be before any worker,
	// not only the one that acked it, marks it (its worker may have died).
	OrphanMarkAge time.Duration // default 30 s
	// PrepareAhead is how long before due a lease holder takes work to
	// prepare it (prepare.go): merged, ids fixed, encoded, stored in Redis,
	// so that at due only the publish is left. 0 prepares nothing. The
	// queue index must be built with the same queue.Options.PrepareAhead.
	PrepareAhead time.Duration
	// Ageing is the queue index's queue.Options.Ageing: with more due than
	// the slots take, a queue whose work has waited twice this long is
	// worked before those with high-priority work. Default
	// queue.DefaultAgeing.
	Ageing time.Duration
	// MaxItemsPerPush bounds the reminders one push carries (a user with
	// more due within MergeWindow gets them in several pushes); default
	// queue.DefaultMaxItemsPerPush.
	MaxItemsPerPush int
	// Observe, when set, sees every published push and its lateness (time
	// from due to nsqd's acceptance, by the Redis clock). It must not keep
	// p: a push published from a seal (prepare.go) comes without its id
	// and grab starts, in a value reused for the next, and is shown late:
	// once the burst is out, or at most a second after its publish (see
	// marker.tell), with its lateness at publish.
	Observe func(p push.Push, late time.Duration)
	// Taken, when set, sees every chunk popped from a queue as due or
	// begun from its preparation (not the chunks recovered from a flight,
	// which were taken before); a chunk published from its seal, late, as
	// Observe.
	Taken func(ch queue.Chunk)
	// BeforeAck is a fault-injection point for tests: called after nsqd
	// accepted a chunk and before the chunk is acked (the window where a
	// crash makes the next holder republish it). Nil in production.
	BeforeAck func()
	// BeforePublish is a fault-injection point for tests: called after a
	// chunk is taken and built, before it is published (where a stall
	// past the lease must keep it from being published). Nil in
	// production.
	BeforePublish func()
	// AfterPrepare is a fault-injection point for tests: called after a
	// chunk was taken ahead of due (and sealed, when it could be), while
	// the lease is held (where a crash leaves ready chunks and a held
	// lease to the next holder). Nil in production.
	AfterPrepare func()
	// ClockSkew is for tests only: it is added to the Redis clock offset
	// at every read of the Redis clock, so the scheduler's view of the
	// time runs this much ahead (negative: behind), as a worker whose
	// clock drifted since its last sync would. Zero in production.
	ClockSkew time.Duration
	// Logger receives lost leases, publish errors and recoveries; nil
	// discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.MergeWindow, 10*time.Second)
	def(&c.Tick, 20*time.Millisecond)
	def(&c.Deadline, 10*time.Second)
	def(&c.DrainTimeout, 15*time.Second)
	def(&c.MarkInterval, 200*time.Millisecond)
	def(&c.OrphanMarkAge, 30*time.Second)
	def(&c.Ageing, queue.DefaultAgeing)
	if c.PopBatch == 0 {
		c.PopBatch = 1000
	}
	if c.Slots == 0 {
		c.Slots = 4
	}
	if c.MarkBatch == 0 {
		c.MarkBatch = 1000
	}
	if c.MaxItemsPerPush == 0 {
		c.MaxItemsPerPush = queue.DefaultMaxItemsPerPush
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c (defaults applied first), joined.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("scheduler: config: "+format, args...))
	}
	if c.Count == nil {
		bad("Count is required")
	}
	if c.MergeWindow < 0 {
		bad("MergeWindow %v is negative", c.MergeWindow)
	}
	if c.Ageing < 0 {
		bad("Ageing %v is negative", c.Ageing)
	}
	if c.Tick <= 0 {
		bad("Tick %v is not positive", c.Tick)
	}
	if c.Deadline <= 0 {
		bad("Deadline %v is not positive", c.Deadline)
	}
	if c.PopBatch < 1 || c.PopBatch > queue.MaxPopUsers {
		bad("PopBatch %d is not between 1 and %d", c.PopBatch, queue.MaxPopUsers)
	}
	if c.Slots < 1 || c.Slots > MaxSlots {
		bad("Slots %d is not between 1 and %d", c.Slots, MaxSlots)
	}
	if c.MarkBatch < 1 {
		bad("MarkBatch %d is below 1", c.MarkBatch)
	}
	if c.PrepareAhead < 0 {
		bad("PrepareAhead %v is negative", c.PrepareAhead)
	}
	if c.MaxItemsPerPush < 1 {
		bad("MaxItemsPerPush %d is below 1", c.MaxItemsPerPush)
	}
	return errors.Join(errs...)
}

// Deps are the parts a Scheduler works with; all are required.
type Deps struct {
	Index     Index             // the queues it pops, acks and recovers
	Balancer  *balance.Balancer // picks due queues and holds their leases
	Publisher Publisher         // sends the pushes
	Templates Templates         // grab starts of the pushed templates
	Marker    Marker            // records sent reminders in MySQL
}

// validate reports every missing part of d.
func (d Deps) validate() error {
	var errs []error
	for _, p := range []struct {
		name    string
		missing bool
	}{{"Index", d.Index == nil}, {"Balancer", d.Balancer == nil}, {"Publisher", d.Publisher == nil},
		{"Templates", d.Templates == nil}, {"Marker", d.Marker == nil}} {
		if p.missing {
			errs = append(errs, fmt.Errorf("scheduler: %s is required", p.name))
		}
	}
	return errors.Join(errs...)
}

// Stats are the scheduler's counters since start.
type Stats struct {
	Published   atomic.Int64 // pushes accepted by nsqd (redeliveries included)
	Recovered   atomic.Int64 // pushes republished from an expired or orphaned flight
	LeasesLost  atomic.Int64
	Marked      atomic.Int64 // reminders recorded as sent in MySQL
	MarkLagMs   atomic.Int64 // age of the oldest unmarked ack seen by the last sweep
	PublishErrs atomic.Int64
	// DeadLettered counts pushes set aside as never publishable (see
	// deadletter.go).
	DeadLettered atomic.Int64
	// Fenced counts publishes withheld because the lease had run out by
	// this process's clock (a stall or a stop past the lease).
	Fenced     atomic.Int64
	Ticks      atomic.Int64 // loop iterations, busy or idle
	LastTickNs atomic.Int64 // unix time (ns) of the last loop iteration
	// LeasesAcquired counts queue leases this scheduler took; Yields the
	// queues it left for another's high-priority work (see yield).
	LeasesAcquired, Yields atomic.Int64
	// Prepared counts pushes taken ahead of due into ready chunks; Sealed
	// those of them whose encoded messages were stored.
	Prepared, Sealed atomic.Int64
	// Time spent in each step of delivery, summed over slots (ns); Prepare
	// is the time spent taking, building, encoding and sealing work ahead.
	PopNs, BuildNs, PublishNs, AckNs, PrepareNs atomic.Int64
}

// Scheduler drains due reminder queues into NSQ. Start it once; Stop it once.
type Scheduler struct {
	cfg       Config
	idx       Index
	bal       *balance.Balancer
	pub       Publisher
	templates Templates
	marker    *marker
	log       *slog.Logger

	stats   Stats
	offset  atomic.Int64 // Redis clock minus local clock, ns
	paused  atomic.Bool  // operators paused emitting (read from Redis)
	beats   []atomic.Int64
	stopped atomic.Bool

	cancelPick context.CancelFunc
	cancelWork context.CancelFunc
	wg         sync.WaitGroup // slots and the clock
	markStop   chan struct{}
	markDone   chan struct{}
	stopOnce   sync.Once
}

// New builds a Scheduler, or reports the problems of cfg and d.
func New(cfg Config, d Deps) (*Scheduler, error) {
	cfg = cfg.WithDefaults()
	if err := errors.Join(cfg.Validate(), d.validate()); err != nil {
		return nil, err
	}
	s := &Scheduler{cfg: cfg, idx: d.Index, bal: d.Balancer, pub: d.Publisher, templates: d.Templates, log: cfg.Logger,
		beats: make([]atomic.Int64, cfg.Slots)}
	s.marker = newMarker(s, d.Marker)
	return s, nil
}

// Stats returns the live counters.
func (s *Scheduler) Stats() *Stats { return &s.stats }

// Start launches the loops. It returns once the Redis clock was read.
func (s *Scheduler) Start(ctx context.Context) error {
	if err := s.syncClock(ctx); err != nil {
		return fmt.Errorf("scheduler start: %w", err)
	}
	paused, err := s.idx.Paused(ctx)
	if err != nil {
		return fmt.Errorf("scheduler start: %w", err)
	}
	s.paused.Store(paused)
	// Picking stops at Stop; work in hand (publish, ack) gets DrainTimeout more.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	pickCtx, cancelPick := context.WithCancel(ctx)
	s.cancelPick, s.cancelWork = cancelPick, cancelWork
	for i := range s.cfg.Slots {
		s.beat(i)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.loop(pickCtx, workCtx, i)
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.clockLoop(pickCtx)
	}()
	s.markStop, s.markDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.markDone)
		s.marker.run(workCtx, s.markStop)
	}()
	return nil
}

// Stop stops taking work, finishes (within DrainTimeout) the pushes in hand,
// flushes sent-marks, gives the leases back and returns. Idempotent.
func (s *Scheduler) Stop() {
	s.stopOnce.Do(func() {
		if s.cancelPick == nil {
			return
		}
		s.stopped.Store(true)
		s.cancelPick()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(s.cfg.DrainTimeout):
			s.log.Warn("drain timed out; unacked pushes stay in flight for the next holder")
			s.cancelWork()
			<-done
		}
		close(s.markStop)
		select {
		case <-s.markDone:
		case <-time.After(s.cfg.DrainTimeout):
			s.log.Warn("final sent-mark flush timed out; the marks stay in Redis for a sweep")
			s.cancelWork()
			<-s.markDone
		}
		s.cancelWork()
	})
}

// Healthy returns an error when a loop has not come round for a while: a
// scheduler stuck on a publish or an engine must not look green.
func (s *Scheduler) Healthy() error {
	limit := 30 * time.Second
	for i := range s.beats {
		if age := time.Since(time.Unix(0, s.beats[i].Load())); age > limit && !s.stopped.Load() {
			return fmt.Errorf("scheduler slot %d stuck for %v", i, age.Round(time.Second))
		}
	}
	return nil
}

// Paused reports whether operators paused emitting, as last read from
// Redis (every 100 ms).
func (s *Scheduler) Paused() bool { return s.paused.Load() }

func (s *Scheduler) beat(slot int) { s.beats[slot].Store(time.Now().UnixNano()) }

// now is the Redis server's clock as estimated locally.
func (s *Scheduler) now() time.Time { return time.Now().Add(time.Duration(s.offset.Load())) }

func (s *Scheduler) syncClock(ctx context.Context) error {
	before := time.Now()
	rt, err := s.idx.Time(ctx)
	if err != nil {
		return err
	}
	after := time.Now()
	mid := before.Add(after.Sub(before) / 2)
	s.offset.Store(int64(rt.Sub(mid) + s.cfg.ClockSkew))
	return nil
}

// clockLoop follows the Redis clock (every 5 s) and the pause flag (every
// 100 ms), and reconciles the next-work index once a second: a worker
// killed between a queue write and its index write must not hide a queue.
// While Redis cannot be read, the last values stay.
func (s *Scheduler) clockLoop(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	lastSync, lastReconcile := time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p, err := s.idx.Paused(ctx); err == nil {
			if s.paused.Swap(p) != p {
				s.log.Info("emitting paused by operators", "paused", p)
			}
		}
		if time.Since(lastReconcile) >= time.Second {
			lastReconcile = time.Now()
			if err := s.idx.Reconcile(ctx, s.cfg.Count(), s.now()); err != nil && ctx.Err() == nil {
				s.log.Warn("reconciling the next-work index", "err", err)
			}
		}
		if time.Since(lastSync) >= 5*time.Second {
			lastSync = time.Now()
			if err := s.syncClock(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("reading the Redis clock", "err", err)
			}
		}
	}
}

func (s *Scheduler) loop(pickCtx, workCtx context.Context, slot int) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-pickCtx.Done():
			return
		case <-timer.C:
		}
		s.beat(slot)
		s.stats.Ticks.Add(1)
		s.stats.LastTickNs.Store(time.Now().UnixNano())
		worked, err := s.once(pickCtx, workCtx)
		if err != nil && pickCtx.Err() == nil {
			s.log.Warn("scheduler tick", "slot", slot, "err", err)
		}
		switch {
		case worked && err == nil:
			timer.Reset(0)
		case err == nil:
			timer.Reset(s.idle(pickCtx))
		default:
			timer.Reset(s.cfg.Tick)
		}
	}
}

// idle is how long a slot that found nothing to do waits: a tick, or less
// when the next work comes sooner, so that a burst is begun when it falls
// due rather than up to a tick after (a millisecond late, so that by the
// Redis clock, which the scripts read, it has come). Work already due
// that the slot did not get (paused, or every such queue held by others)
// waits a tick.
func (s *Scheduler) idle(ctx context.Context) time.Duration {
	at, ok, err := s.idx.NextWork(ctx)
	if err != nil || !ok {
		return s.cfg.Tick
	}
	if d := at.Sub(s.now()); d > 0 {
		return min(d+time.Millisecond, s.cfg.Tick)
	}
	return s.cfg.Tick
}

// recoverEvery is how often a slot draining a queue looks for its expired
// flights.
const recoverEvery = 100 * time.Millisecond

// once picks a due queue and drains it; worked reports whether it got one.
func (s *Scheduler) once(pickCtx, workCtx context.Context) (worked bool, err error) {
	if s.paused.Load() {
		return false, nil
	}
	now := s.now()
	// Queues numbered ≥ N stay in the index until empty, so they drain too.
	due, err := s.idx.DueQueues(pickCtx, now, 256)
	if err != nil || len(due) == 0 {
		return false, err
	}
	var l *queue.Lease
	if len(due) > 1 {
		// More is due than this slot takes at once: first a queue whose
		// work has waited longer than the lowest priority's ageing (so
		// nothing starves; a next score may be PrepareAhead early), then
		// one with high-priority work, so that with fewer slots than
		// queues high pushes go first across queues, not only within one.
		lists := []func() ([]int, error){
			func() ([]int, error) {
				return s.idx.DueQueues(pickCtx, now.Add(-2*s.cfg.Ageing-s.cfg.PrepareAhead), 256)
			},
			func() ([]int, error) { return s.idx.UrgentQueues(pickCtx, now, 256) },
		}
		for _, list := range lists {
			qs, err := list()
			if err != nil {
				return false, err
			}
			if l, err = s.bal.Pick(pickCtx, qs); err != nil {
				return false, err
			}
			if l != nil {
				break
			}
		}
	}
	if l == nil {
		if l, err = s.bal.Pick(pickCtx, due); err != nil || l == nil {
			return false, err
		}
	}
	for l != nil {
		s.stats.LeasesAcquired.Add(1)
		if l, err = s.drain(pickCtx, workCtx, l); err != nil {
			return true, err
		}
	}
	return true, nil
}

// yield returns, when a slot working queue q should leave it for another
// queue's high-priority work, the lease of that queue: q has no high work
// due and another queue has, and its lease could be taken (one held by
// another slot is not waited for). A failed read keeps the slot on q.
func (s *Scheduler) yield(ctx context.Context, q int) *queue.Lease {
	urgent, err := s.idx.UrgentQueues(ctx, s.now(), 16)
	if err != nil {
		return nil
	}
	urgent = slices.DeleteFunc(urgent, func(u int) bool { return u == q })
	if len(urgent) == 0 {
		return nil
	}
	if high, err := s.idx.HighDue(ctx, q, s.now()); err != nil || high {
		return nil
	}
	l, err := s.bal.Pick(ctx, urgent)
	if err != nil {
		return nil
	}
	return l
}

// drain works l's queue until nothing is due, the lease is lost or Stop,
// or it leaves the queue for another's high-priority work: then it returns
// that queue's lease, for the caller to drain next.
func (s *Scheduler) drain(pickCtx, workCtx context.Context, l *queue.Lease) (next *queue.Lease, err error) {
	h := s.bal.Hold(workCtx, l)
	defer h.Release()
	lost := h.Lost
	// Publishing stops when the lease is lost: the next holder republishes.
	ctx, cancel := context.WithCancel(workCtx)
	defer cancel()
	go func() {
		select {
		case <-lost:
			cancel()
		case <-ctx.Done():
		}
	}()

	// Flights left by a previous holder are orphans: take them all at once.
	// After that only expired flights are recovered (a deadline is
	// seconds), looked for every recoverEvery, not every round of a burst.
	all := true
	var recovered time.Time
	for rounds := 0; ; {
		if err := ctx.Err(); err != nil {
			return nil, s.leaseErr(lost, err)
		}
		if all || time.Since(recovered) >= recoverEvery {
			rec, err := s.idx.Recover(ctx, l, queue.RecoverOptions{Deadline: s.cfg.Deadline, Max: 16, All: all})
			if err != nil {
				return nil, s.leaseErr(lost, err)
			}
			if len(rec) > 0 {
				for _, ch := range rec {
					s.stats.Recovered.Add(int64(len(ch.Pushes)))
					if err := s.deliver(ctx, h, ch); err != nil {
						return nil, s.leaseErr(lost, err)
					}
				}
				continue
			}
			recovered = time.Now()
		}
		if !all && (pickCtx.Err() != nil || s.paused.Load()) {
			break
		}
		all = false
		if rounds > 0 {
			if next := s.yield(ctx, l.Queue); next != nil {
				s.stats.Yields.Add(1)
				if err := s.idx.SetNext(ctx, l.Queue, time.Time{}); err != nil {
					s.log.Warn("scheduler: set next work of a queue left for another's", "queue", l.Queue, "err", err) // Reconcile repairs it
				}
				return next, nil
			}
		}
		rounds++ // of begins and pops, after the orphans
		// Ready chunks are begun even with PrepareAhead off: a worker that
		// prepared them may have run with it on (their items are taken).
		begun, err := s.idx.Begin(ctx, l, queue.BeginOptions{Deadline: s.cfg.Deadline, Max: beginBatch})
		if err != nil {
			return nil, s.leaseErr(lost, err)
		}
		if err := s.deliverBegun(ctx, h, begun); err != nil {
			return nil, s.leaseErr(lost, err)
		}
		if len(begun) > 0 {
			continue
		}
		began := time.Now()
		p, err := s.idx.Pop(ctx, l, s.popOptions())
		s.stats.PopNs.Add(int64(time.Since(began)))
		if err != nil {
			return nil, s.leaseErr(lost, err)
		}
		if len(p.Chunk.Pushes) > 0 {
			s.taken(p.Chunk)
			if err := s.deliver(ctx, h, p.Chunk); err != nil {
				return nil, s.leaseErr(lost, err)
			}
		}
		if len(p.Chunk.Pushes) >= s.cfg.PopBatch {
			continue
		}
		if s.cfg.PrepareAhead > 0 {
			// A few chunks in a row, then back to what may have come due.
			more := false
			for range prepareRun {
				if more, err = s.prepare(ctx, l); err != nil {
					return nil, s.leaseErr(lost, err)
				}
				if !more {
					break
				}
			}
			if more {
				continue
			}
		}
		break
	}
	// Our own flights are acked, so the pop's "next" (which counted their
	// deadlines) is stale: let SetNext read the queue's due, flight and
	// ready sets.
	return nil, s.idx.SetNext(ctx, l.Queue, time.Time{})
}

func (s *Scheduler) popOptions() queue.PopOptions {
	return queue.PopOptions{MergeWindow: s.cfg.MergeWindow, MaxUsers: s.cfg.PopBatch, Deadline: s.cfg.Deadline, MaxItems: s.cfg.MaxItemsPerPush}
}

func (s *Scheduler) leaseErr(lost <-chan struct{}, err error) error {
	select {
	case <-lost:
		s.stats.LeasesLost.Add(1)
		return fmt.Errorf("lease lost: %w", err)
	default:
	}
	if errors.Is(err, queue.ErrLeaseLost) {
		s.stats.LeasesLost.Add(1)
	}
	return err
}

// deliver publishes a taken chunk, acks it and hands it to the marker. A
// chunk some of whose pushes can never be published goes to settle
// instead (deadletter.go), so that they do not hold up their queue.
func (s *Scheduler) deliver(ctx context.Context, h *balance.Held, ch queue.Chunk) error {
	l := h.Lease
	began := time.Now()
	out, unsent, err := s.build(ctx, ch)
	if err != nil {
		return err
	}
	built := time.Now()
	s.stats.BuildNs.Add(int64(built.Sub(began)))
	if len(unsent) > 0 {
		return s.settle(ctx, h, ch, out, unsent, nil)
	}
	if s.cfg.BeforePublish != nil {
		s.cfg.BeforePublish()
	}
	err = s.send(ctx, h, out)
	published := time.Now()
	s.stats.PublishNs.Add(int64(published.Sub(built)))
	if push.Unsendable(err) {
		return s.settle(ctx, h, ch, out, nil, err)
	}
	if err != nil {
		s.stats.PublishErrs.Add(1)
		return fmt.Errorf("publish %d pushes of queue %d: %w", len(out), l.Queue, err)
	}
	s.observe(out)
	if s.cfg.BeforeAck != nil {
		s.cfg.BeforeAck()
	}
	_, err = s.idx.Ack(ctx, l, ch)
	s.stats.AckNs.Add(int64(time.Since(published)))
	if err != nil {
		// Published but not acked: the next holder republishes the same ids.
		return fmt.Errorf("ack %d pushes of queue %d: %w", len(out), l.Queue, err)
	}
	s.marker.add(l.Queue, ch, out)
	return nil
}

// taken shows a chunk taken from its queue to Taken.
func (s *Scheduler) taken(ch queue.Chunk) {
	if s.cfg.Taken != nil {
		s.cfg.Taken(ch)
	}
}

// observe counts pushes nsqd accepted and shows them to Observe.
func (s *Scheduler) observe(out []push.Push) {
	s.stats.Published.Add(int64(len(out)))
	if s.cfg.Observe != nil {
		at := s.now()
		for _, p := range out {
			s.cfg.Observe(p, at.Sub(p.DueAt))
		}
	}
}

// build turns a taken chunk into messages, each with its deterministic id.
// A chunk mostly carries one template, so grab starts are looked up once
// per template, not once per item. A push naming a template that does not
// exist cannot be built: it is left zero in out and listed in unsent.
func (s *Scheduler) build(ctx context.Context, ch queue.Chunk) (out []push.Push, unsent []queue.Unsent, err error) {
	type grab struct {
		at  time.Time
		err error // ErrNoTemplate
	}
	grabs := map[int64]grab{}
	out = make([]push.Push, len(ch.Pushes))
	var items []push.Item // scratch: NewPush copies it
pushes:
	for i, t := range ch.Pushes {
		items = slices.Grow(items[:0], len(t.Items))[:len(t.Items)]
		for j, it := range t.Items {
			g, ok := grabs[it.TemplateID]
			if !ok {
				gs, err := s.templates.GrabStart(ctx, it.TemplateID)
				switch {
				case errors.Is(err, ErrNoTemplate):
					g.err = err
				case err != nil:
					return nil, nil, fmt.Errorf("template %d of push for user %d: %w", it.TemplateID, t.UserID, err)
				}
				g.at = gs
				grabs[it.TemplateID] = g
			}
			if g.err != nil {
				unsent = append(unsent, queue.Unsent{Index: i, Reason: fmt.Sprintf("template %d: %v", it.TemplateID, g.err)})
				continue pushes
			}
			items[j] = push.Item{TemplateID: it.TemplateID, PushAt: it.PushAt, GrabStart: g.at}
		}
		out[i] = push.NewPush(t.UserID, items)
	}
	return out, unsent, nil
}
