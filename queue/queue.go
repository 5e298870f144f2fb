package queue

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/redisscript"
)

// Limits and defaults of a Client.
const (
	// MaxPopUsers is the most users one pop may take (PopOptions.MaxUsers),
	// so one Lua call stays short.
	MaxPopUsers = 5000
	// DefaultPrefix is the key prefix of an Options without one.
	DefaultPrefix = "couponpush"
	// DefaultTombstoneTTL is how long a cancel is remembered by default.
	DefaultTombstoneTTL = 10 * time.Minute
)

// Options tune a Client. Zero values mean the defaults.
type Options struct {
	// Prefix starts every key; several deployments or tests share one Redis
	// by using different prefixes. Default DefaultPrefix.
	Prefix string
	// Owner names this process in the leases it takes (the lease key holds
	// "owner/random token"), so operators can see who holds a queue.
	Owner string
	// TombstoneTTL is how long past its push time a cancel is remembered, so
	// that a late, older add cannot revive the reminder. Default
	// DefaultTombstoneTTL.
	TombstoneTTL time.Duration
	// MaxRemindersPerUser bounds the reminders (pending or taken, not
	// cancelled) one user may hold in its queue; Add refuses one more with
	// ErrUserFull. 0 means DefaultMaxRemindersPerUser.
	MaxRemindersPerUser int
	// MaxDead bounds the pushes a queue's dead-letter set may hold; past it
	// DeadLetter fails with ErrDeadFull and the chunk stays in flight.
	// 0 means DefaultMaxDead.
	MaxDead int
	// PrepareAhead is how long before due a lease holder may take work to
	// prepare it (Prepare): the next-work index then names a queue that
	// long before its earliest due user, while it may prepare more. 0 means
	// no work is taken ahead; every worker of a prefix must use the same.
	PrepareAhead time.Duration
	// MaxReady bounds the prepared chunks a queue may hold (Prepare takes no
	// more past it), so prepared work costs bounded memory. 0 means
	// DefaultMaxReady.
	MaxReady int
	// Ageing is how much longer each priority class below high may wait
	// than the one above it when more is due than one pop takes: a normal
	// push due Ageing before a high one goes first, a low one 2×Ageing
	// before. 0 means DefaultAgeing.
	Ageing time.Duration
	// ClassWindow is how far past a user's earliest pending item the items
	// that decide its next push's priority reach: the most urgent of them
	// wins. It should be the scheduler's merge window (the items one push
	// carries); it orders pushes only, so writers that differ in it lose
	// nothing. 0 means DefaultClassWindow.
	ClassWindow time.Duration
}

// Priority defaults.
const (
	// DefaultAgeing is Options.Ageing's default.
	DefaultAgeing = 10 * time.Second
	// DefaultClassWindow is Options.ClassWindow's default: the scheduler's
	// default merge window.
	DefaultClassWindow = 10 * time.Second
)

// DefaultMaxReady is the prepared chunks a queue holds at most by default:
// with chunks of 1,000 pushes, 256,000 reminders per queue.
const DefaultMaxReady = 256

// WithDefaults returns a copy of o with every zero field set to its default.
func (o Options) WithDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.TombstoneTTL == 0 {
		o.TombstoneTTL = DefaultTombstoneTTL
	}
	if o.MaxRemindersPerUser == 0 {
		o.MaxRemindersPerUser = DefaultMaxRemindersPerUser
	}
	if o.MaxDead == 0 {
		o.MaxDead = DefaultMaxDead
	}
	if o.MaxReady == 0 {
		o.MaxReady = DefaultMaxReady
	}
	if o.Ageing == 0 {
		o.Ageing = DefaultAgeing
	}
	if o.ClassWindow == 0 {
		o.ClassWindow = DefaultClassWindow
	}
	return o
}

// Validate reports every problem of o (defaults applied first), joined.
func (o Options) Validate() error {
	o = o.WithDefaults()
	var errs []error
	if o.TombstoneTTL < time.Millisecond {
		errs = append(errs, fmt.Errorf("queue: TombstoneTTL %v is below 1ms", o.TombstoneTTL))
	}
	if o.MaxRemindersPerUser < 1 {
		errs = append(errs, fmt.Errorf("queue: MaxRemindersPerUser %d is below 1", o.MaxRemindersPerUser))
	}
	if o.PrepareAhead < 0 {
		errs = append(errs, fmt.Errorf("queue: PrepareAhead %v is negative", o.PrepareAhead))
	}
	if o.MaxReady < 1 {
		errs = append(errs, fmt.Errorf("queue: MaxReady %d is below 1", o.MaxReady))
	}
	if o.MaxDead < 1 {
		errs = append(errs, fmt.Errorf("queue: MaxDead %d is below 1", o.MaxDead))
	}
	if o.Ageing < time.Millisecond {
		errs = append(errs, fmt.Errorf("queue: Ageing %v is below 1ms", o.Ageing))
	}
	if o.ClassWindow < 0 {
		errs = append(errs, fmt.Errorf("queue: ClassWindow %v is negative", o.ClassWindow))
	}
	return errors.Join(errs...)
}

// Client is the Redis schedule index: N queues of reminders, the scripts that
// move them, and the leases that make one worker own a queue at a time.
type Client struct {
	rdb          redis.UniversalClient
	prefix       string
	owner        string
	tombTTLms    int64
	maxReminders int
	maxDead      int
	aheadMs      int64
	maxReady     int
	ageMs        int64
	classWinMs   int64
}

// New returns a Client over rdb, which may be a standalone or cluster
// client; it fails if opts do not Validate.
func New(rdb redis.UniversalClient, opts Options) (*Client, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Client{rdb: rdb, prefix: opts.Prefix, owner: opts.Owner, tombTTLms: opts.TombstoneTTL.Milliseconds(),
		maxReminders: opts.MaxRemindersPerUser, maxDead: opts.MaxDead, aheadMs: opts.PrepareAhead.Milliseconds(), maxReady: opts.MaxReady,
		ageMs: opts.Ageing.Milliseconds(), classWinMs: opts.ClassWindow.Milliseconds()}, nil
}

// Shard is the queue that holds userID's reminders when there are n queues.
func Shard(userID int64, n int) int {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(uint64(userID) >> (8 * i))
	}
	h.Write(b[:])
	return int(h.Sum64() % uint64(n))
}

// Add indexes e in its queue under a fixed queue count n, for queues that
// never had a layout recorded (tests, tools); it answers ErrStaleCount from
// a queue that follows a layout. Services write through a Router, which
// follows N as it changes. It is idempotent: when the queue holds this
// (user, template) at an equal or newer version it changes nothing, so a
// retried PUT repairs a lost write and never revives a cancel. It returns
// ErrInFlight if the reminder was already taken from the queue.
func (c *Client) Add(ctx context.Context, n int, e Entry) error {
	return c.write(ctx, addScript, "add", n, e)
}

// Cancel replaces e's reminder by a tombstone at e.Version (which must be
// newer than the version that added it), under a fixed queue count n as
// Add. It returns ErrInFlight when the reminder was already taken from the
// queue: it is being or was published.
func (c *Client) Cancel(ctx context.Context, n int, e Entry) error {
	return c.write(ctx, cancelScript, "cancel", n, e)
}

func (c *Client) write(ctx context.Context, s *redis.Script, op string, n int, e Entry) error {
	if n < 1 {
		return fmt.Errorf("queue %s: queue count %d < 1", op, n)
	}
	if err := checkEntry(op, e); err != nil {
		return err
	}
	q := Shard(e.UserID, n)
	l := Layout{From: n, To: n}
	status, _, err := c.writeAt(ctx, writeCall{script: s, op: op, layoutKey: l.key(), queue: q, home: q}, e)
	if err != nil {
		return err
	}
	return writeErr(op, e, status)
}

func checkEntry(op string, e Entry) error {
	if e.UserID <= 0 || e.TemplateID <= 0 || e.Version <= 0 || !e.Priority.Valid() {
		return fmt.Errorf("queue %s: invalid entry %+v", op, e)
	}
	return nil
}

// Write statuses of add.lua and cancel.lua.
const (
	wrote     = 1
	unchanged = 0
	taken     = 2
	full      = 3  // the user holds MaxRemindersPerUser reminders already
	stale     = -1 // the queue follows another layout
	forward   = -2 // the user's record lives in its new queue
	moving    = -3 // the user is being moved: retry
)

func writeErr(op string, e Entry, status int64) error {
	switch status {
	case wrote, unchanged:
		return nil
	case taken:
		return fmt.Errorf("queue %s user %d template %d: %w", op, e.UserID, e.TemplateID, ErrInFlight)
	case stale:
		return fmt.Errorf("queue %s user %d: %w", op, e.UserID, ErrStaleCount)
	case full:
		return fmt.Errorf("queue %s user %d template %d: %w", op, e.UserID, e.TemplateID, ErrUserFull)
	}
	return fmt.Errorf("queue %s user %d: unexpected status %d", op, e.UserID, status)
}

// writeCall is one run of add.lua or cancel.lua (see route in prelude.lua).
type writeCall struct {
	script    *redis.Script // addScript or cancelScript
	op        string        // "add" or "cancel", for errors
	layoutKey string        // the layout the writer follows (Layout.key)
	queue     int           // the queue written
	home      int           // the user's queue under that layout
	forwarded bool          // the user's old queue forwarded the write here
}

// writeAt runs w on queue w.queue, pipelined with telling the balancer the
// queue has work at the entry's time unless it knows of earlier work: one
// round trip. The next index only ever errs early (a spurious pick), and
// Reconcile repairs it. It returns the script's status and, when stale,
// the queue's layout key.
func (c *Client) writeAt(ctx context.Context, w writeCall, e Entry) (int64, string, error) {
	op := w.op
	k := c.keys(w.queue)
	keys := []string{k.due, k.items, k.epoch, k.moving, k.ready, k.prep, k.held, k.dueHigh, k.dueLow, k.readyHigh, k.readyLow}
	f := "0"
	if w.forwarded {
		f = "1"
	}
	args := []any{w.layoutKey, e.UserID, e.TemplateID, e.PushAt.UnixMilli(), e.Version, c.tombTTLms, w.queue, w.home, f, c.maxReminders,
		e.Priority.letter(), c.classWinMs}
	// A script the server lost (restart, SCRIPT FLUSH) is sent again by
	// EVAL, which loads it; the ZADD is not repeated.
	pipe := redisscript.NewPipeline(c.rdb)
	cmd := pipe.Run(ctx, w.script, keys, args...)
	at := redis.Z{Score: float64(e.PushAt.UnixMilli() - c.aheadMs), Member: w.queue}
	pipe.ZAddLT(ctx, c.nextKey(), at)
	if e.Priority == PriorityHigh {
		pipe.ZAddLT(ctx, c.urgentKey(), at)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, "", fmt.Errorf("queue %s user %d template %d: %w", op, e.UserID, e.TemplateID, err)
	}
	res, err := cmd.Slice()
	if err != nil {
		return 0, "", fmt.Errorf("queue %s user %d template %d: %w", op, e.UserID, e.TemplateID, err)
	}
	status, _ := res[0].(int64)
	other, _ := res[1].(string)
	return status, other, nil
}

// Lease is a worker's hold on one queue. Every script that changes the
// queue's flights checks its token, so a holder that stalled past its lease
// can no longer pop or ack for the one that took the queue over.
type Lease struct {
	Queue int
	token string
}

// Acquire takes queue q's lease for ttl if nobody holds it.
func (c *Client) Acquire(ctx context.Context, q int, ttl time.Duration) (*Lease, bool, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, false, fmt.Errorf("queue acquire %d: token: %w", q, err)
	}
	l := &Lease{Queue: q, token: hex.EncodeToString(b[:])}
	if c.owner != "" {
		l.token = c.owner + "/" + l.token
	}
	ok, err := c.rdb.SetNX(ctx, c.keys(q).lease, l.token, ttl).Result()
	if err != nil {
		return nil, false, fmt.Errorf("queue acquire %d: %w", q, err)
	}
	if !ok {
		return nil, false, nil
	}
	return l, true, nil
}

// Renew extends l by ttl; ErrLeaseLost if another worker holds the queue now.
func (c *Client) Renew(ctx context.Context, l *Lease, ttl time.Duration) error {
	return c.lease(ctx, l, ttl.Milliseconds())
}

// Release gives l up; ErrLeaseLost if it had already expired.
func (c *Client) Release(ctx context.Context, l *Lease) error {
	return c.lease(ctx, l, 0)
}

func (c *Client) lease(ctx context.Context, l *Lease, ms int64) error {
	held, err := leaseScript.Run(ctx, c.rdb, []string{c.keys(l.Queue).lease}, l.token, ms).Int()
	if err != nil {
		return fmt.Errorf("queue lease %d: %w", l.Queue, err)
	}
	if held == 0 {
		return fmt.Errorf("queue lease %d: %w", l.Queue, ErrLeaseLost)
	}
	return nil
}

// PopOptions bound one pop.
type PopOptions struct {
	Now         time.Time     // zero = the Redis server's clock
	MergeWindow time.Duration // items due within this of a user's earliest are merged
	MaxUsers    int           // at most this many users per call (≤ MaxPopUsers)
	Deadline    time.Duration // a flight not acked within this is redelivered
	// MaxItems bounds the items of one push (0: DefaultMaxItemsPerPush): a
	// user with more due within the window gets its earliest MaxItems now
	// and the rest in a later push of their own.
	MaxItems int
}

// Popped is the result of one pop: the chunk of fixed pushes taken (none
// when nothing was due) and when the queue has work next (zero: none).
type Popped struct {
	Chunk Chunk
	Next  time.Time
}

// Pop takes due users from queue l.Queue (see lua/pop.lua).
func (c *Client) Pop(ctx context.Context, l *Lease, o PopOptions) (Popped, error) {
	p, _, _, err := c.pop(ctx, l, o, "", 0)
	return p, err
}

// Prepared is the result of one Prepare: the chunk taken ahead of due
// (none when there was nothing to take) with its id and publish time, and
// when the queue has work next (zero: none).
type Prepared struct {
	Chunk     Chunk
	ID        string
	PublishAt time.Time
	Next      time.Time
}

// PrepareOptions bound one Prepare: those of a pop, and how far ahead.
type PrepareOptions struct {
	PopOptions
	// Horizon is the latest score taken: users due up to it are taken.
	// Zero: now (the Redis clock, or PopOptions.Now) plus the client's
	// PrepareAhead.
	Horizon time.Time
	// Span groups users into one chunk: those due up to Span after the
	// chunk's earliest, which is its publish time. It must not exceed
	// MergeWindow (nothing may be published more than the merge window
	// before its push time); default 10 ms, cut to MergeWindow.
	Span time.Duration
}

// DefaultPrepareSpan is PrepareOptions.Span's default.
const DefaultPrepareSpan = 10 * time.Millisecond

// Prepare takes work ahead of due from l's queue into a ready chunk (see
// lua/pop.lua's prepare mode): its pushes and ids are fixed as a pop's
// would be, and Begin moves it to the flight set once its publish time has
// come by the Redis clock. Until then a Cancel withdraws an item from it.
// It takes nothing when the client has no PrepareAhead, while the queue is
// being moved, or when the queue holds MaxReady ready chunks.
func (c *Client) Prepare(ctx context.Context, l *Lease, o PrepareOptions) (Prepared, error) {
	if c.aheadMs <= 0 {
		return Prepared{}, nil
	}
	span := cmp.Or(o.Span, DefaultPrepareSpan)
	span = min(span, o.MergeWindow)
	horizon := "ahead" // now (Redis's or o.Now) plus PrepareAhead
	if !o.Horizon.IsZero() {
		horizon = strconv.FormatInt(o.Horizon.UnixMilli(), 10)
	}
	p, id, at, err := c.pop(ctx, l, o.PopOptions, horizon, span)
	if err != nil {
		return Prepared{}, err
	}
	return Prepared{Chunk: p.Chunk, ID: id, PublishAt: at, Next: p.Next}, nil
}

func (c *Client) pop(ctx context.Context, l *Lease, o PopOptions, horizon string, span time.Duration) (p Popped, id string, at time.Time, err error) {
	op := "pop"
	if horizon != "" {
		op = "prepare"
	}
	if o.MaxUsers < 1 || o.MaxUsers > MaxPopUsers {
		return Popped{}, "", time.Time{}, fmt.Errorf("queue %s: max users %d out of 1..%d", op, o.MaxUsers, MaxPopUsers)
	}
	if o.MaxItems < 0 {
		return Popped{}, "", time.Time{}, fmt.Errorf("queue %s: max items %d is negative", op, o.MaxItems)
	}
	k := c.keys(l.Queue)
	res, err := popScript.Run(ctx, c.rdb, []string{k.due, k.items, k.flight, k.lease, k.ready, k.prep, k.held, k.epoch,
		k.dueHigh, k.dueLow, k.readyHigh, k.readyLow},
		l.token, nowArg(o.Now), o.MergeWindow.Milliseconds(), o.MaxUsers, o.Deadline.Milliseconds(), c.tombTTLms, cmp.Or(o.MaxItems, DefaultMaxItemsPerPush),
		horizon, span.Milliseconds(), c.maxReady, c.aheadMs, c.ageMs, c.classWinMs).Slice()
	if err != nil {
		return Popped{}, "", time.Time{}, leaseErr(op, l.Queue, err)
	}
	if s, ok := res[0].(string); ok {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Popped{}, "", time.Time{}, fmt.Errorf("queue %s %d: next %q: %w", op, l.Queue, s, err)
		}
		p.Next = time.UnixMilli(ms)
	}
	if s, ok := res[1].(string); ok {
		if p.Chunk, err = ParseChunk(s); err != nil {
			return Popped{}, "", time.Time{}, fmt.Errorf("queue %s %d: %w", op, l.Queue, err)
		}
	}
	id, _ = res[2].(string)
	if s, ok := res[3].(string); ok {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Popped{}, "", time.Time{}, fmt.Errorf("queue %s %d: publish time %q: %w", op, l.Queue, s, err)
		}
		at = time.UnixMilli(ms)
	}
	return p, id, at, nil
}

// Seal stores the encoded messages of ready chunk id of l's queue, so that
// Begin hands them out and the publisher sends them unchanged. It reports
// whether they were stored: not when the chunk has begun or is gone, or
// when an item was withdrawn from it since Prepare (Begin then hands out
// no encoding, and the pushes are built again).
func (c *Client) Seal(ctx context.Context, l *Lease, id string, encoded []byte) (bool, error) {
	k := c.keys(l.Queue)
	n, err := sealScript.Run(ctx, c.rdb, []string{k.ready, k.prep, k.lease, k.readyHigh, k.readyLow}, l.token, id, encoded).Int()
	if err != nil {
		return false, leaseErr("seal", l.Queue, err)
	}
	return n == 1, nil
}

// Begun is a prepared chunk whose publish has begun: it is in flight, like
// a popped chunk, and Encoded holds its sealed messages (nil when it was
// never sealed or an item was withdrawn since). A sealed chunk comes
// unparsed (Chunk.Parsed is false): publishing its messages and acking it
// is work per chunk, and decoding its pushes (Chunk.Parse), work per
// reminder, can wait until the burst is out.
type Begun struct {
	ID      string
	Chunk   Chunk
	Encoded []byte
}

// BeginOptions bound one Begin.
type BeginOptions struct {
	Now      time.Time     // zero = the Redis server's clock
	Deadline time.Duration // a flight not acked within this is redelivered
	Max      int           // at most this many chunks per call
}

// Begin moves, under l, up to o.Max ready chunks of l's queue whose publish
// time has come by the Redis clock into the flight set, and returns them
// (see lua/begin.lua): the most urgent first, and all of one priority. From
// then on their items can no longer be cancelled; they are acked,
// recovered and forgotten like popped chunks.
func (c *Client) Begin(ctx context.Context, l *Lease, o BeginOptions) ([]Begun, error) {
	if o.Max < 1 {
		return nil, fmt.Errorf("queue begin: max %d is below 1", o.Max)
	}
	k := c.keys(l.Queue)
	res, err := beginScript.Run(ctx, c.rdb, []string{k.ready, k.prep, k.flight, k.lease, k.readyHigh, k.readyLow},
		l.token, nowArg(o.Now), o.Deadline.Milliseconds(), o.Max, c.ageMs).Slice()
	if err != nil {
		return nil, leaseErr("begin", l.Queue, err)
	}
	out := make([]Begun, 0, len(res)/3)
	for i := 0; i+2 < len(res); i += 3 {
		id, _ := res[i].(string)
		text, _ := res[i+1].(string)
		b := Begun{ID: id, Chunk: Chunk{raw: text}}
		if enc, ok := res[i+2].(string); ok {
			b.Encoded = []byte(enc)
		} else if b.Chunk, err = ParseChunk(text); err != nil {
			return nil, fmt.Errorf("queue begin %d: chunk %s: %w", l.Queue, id, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// Ack records that nsqd accepted every push of ch, taken from l's queue; ch
// then waits in the marks set for MySQL's sent-mark (see Marks, Forget). It
// reports whether ch was still in flight.
func (c *Client) Ack(ctx context.Context, l *Lease, ch Chunk) (bool, error) {
	n, err := c.AckAll(ctx, l, []Chunk{ch})
	return n == 1, err
}

// AckAll is Ack for several chunks of l's queue in one script call; it
// returns how many were still in flight.
func (c *Client) AckAll(ctx context.Context, l *Lease, chs []Chunk) (int, error) {
	if len(chs) == 0 {
		return 0, nil
	}
	k := c.keys(l.Queue)
	args := make([]any, 0, 2+len(chs))
	args = append(args, l.token, "")
	for _, ch := range chs {
		args = append(args, ch.raw)
	}
	n, err := ackScript.Run(ctx, c.rdb, []string{k.flight, k.marks, k.lease}, args...).Int()
	if err != nil {
		return 0, leaseErr("ack", l.Queue, err)
	}
	return n, nil
}

// RecoverOptions bound one recover.
type RecoverOptions struct {
	Now      time.Time     // zero = the Redis server's clock
	Deadline time.Duration // the new deadline of each recovered flight
	Max      int           // at most this many chunks per call
	// All takes every flight, expired or not (right after taking the queue
	// over: its last holder cannot ack them any more).
	All bool
}

// Recover returns up to o.Max chunks of l's queue whose deadline passed, or
// all flights with o.All. They keep their pushes, ids and items, and get a
// new deadline.
func (c *Client) Recover(ctx context.Context, l *Lease, o RecoverOptions) ([]Chunk, error) {
	k := c.keys(l.Queue)
	flag := "0"
	if o.All {
		flag = "1"
	}
	res, err := recoverScript.Run(ctx, c.rdb, []string{k.flight, k.lease},
		l.token, nowArg(o.Now), o.Deadline.Milliseconds(), o.Max, flag).StringSlice()
	if err != nil {
		return nil, leaseErr("recover", l.Queue, err)
	}
	out := make([]Chunk, 0, len(res))
	for _, r := range res {
		ch, err := ParseChunk(r)
		if err != nil {
			return nil, fmt.Errorf("queue recover %d: %w", l.Queue, err)
		}
		out = append(out, ch)
	}
	return out, nil
}

// Marked is an acked chunk whose sent-mark may not have reached MySQL.
type Marked struct {
	Chunk
	AckedAt time.Time
}

// Marks returns up to max acked chunks of queue q acked at or before t,
// oldest first.
func (c *Client) Marks(ctx context.Context, q int, t time.Time, max int) ([]Marked, error) {
	zs, err := c.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
		Key: c.keys(q).marks, Start: "-inf", Stop: strconv.FormatInt(t.UnixMilli(), 10),
		ByScore: true, Count: int64(max),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("queue marks %d: %w", q, err)
	}
	out := make([]Marked, 0, len(zs))
	for _, z := range zs {
		ch, err := ParseChunk(z.Member.(string))
		if err != nil {
			return nil, fmt.Errorf("queue marks %d: %w", q, err)
		}
		out = append(out, Marked{Chunk: ch, AckedAt: time.UnixMilli(int64(z.Score))})
	}
	return out, nil
}

// OldestMark returns when queue q's oldest unforgotten chunk was acked, or
// the zero time when it has none.
func (c *Client) OldestMark(ctx context.Context, q int) (time.Time, error) {
	zs, err := c.rdb.ZRangeWithScores(ctx, c.keys(q).marks, 0, 0).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("queue oldest mark %d: %w", q, err)
	}
	if len(zs) == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(int64(zs[0].Score)), nil
}

// Forget drops chunks of queue q whose sent-marks reached MySQL: their
// marks and their users' taken entries. Idempotent.
func (c *Client) Forget(ctx context.Context, q int, chunks []Chunk) error {
	if len(chunks) == 0 {
		return nil
	}
	k := c.keys(q)
	args := make([]any, len(chunks))
	for i, ch := range chunks {
		args[i] = ch.raw
	}
	if err := forgetScript.Run(ctx, c.rdb, []string{k.marks, k.items, k.due, k.held, k.dueHigh, k.dueLow}, args...).Err(); err != nil {
		return fmt.Errorf("queue forget %d: %w", q, err)
	}
	return nil
}

// NextWork is the earliest time any queue has work, by the next index
// (ok false: none has any), so that an idle scheduler wakes when it comes.
func (c *Client) NextWork(ctx context.Context) (at time.Time, ok bool, err error) {
	zs, err := c.rdb.ZRangeWithScores(ctx, c.nextKey(), 0, 0).Result()
	if err != nil {
		return time.Time{}, false, fmt.Errorf("queue next work: %w", err)
	}
	if len(zs) == 0 {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(int64(zs[0].Score)), true, nil
}

// DueQueues returns the queues below n that have work at or before t,
// earliest first, at most max of them.
func (c *Client) DueQueues(ctx context.Context, t time.Time, max int) ([]int, error) {
	return c.queuesBy(ctx, c.nextKey(), t, max)
}

// queuesBy lists up to max queues of index key whose time is at most t.
func (c *Client) queuesBy(ctx context.Context, key string, t time.Time, max int) ([]int, error) {
	ms, err := c.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: key, Start: "-inf", Stop: strconv.FormatInt(t.UnixMilli(), 10),
		ByScore: true, Count: int64(max),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("queue due queues: %w", err)
	}
	out := make([]int, 0, len(ms))
	for _, m := range ms {
		q, err := strconv.Atoi(m)
		if err != nil {
			return nil, fmt.Errorf("queue due queues: member %q: %w", m, err)
		}
		out = append(out, q)
	}
	return out, nil
}

// SetNext records when queue q has work next (zero: none known). It is called
// after a pop with the pop's answer and then checks the queue again, so an
// add that slipped in between is never hidden. The urgent index (see
// UrgentQueues) is set from that check.
func (c *Client) SetNext(ctx context.Context, q int, next time.Time) error {
	key := c.nextKey()
	pipe := c.rdb.Pipeline()
	if next.IsZero() {
		pipe.ZRem(ctx, key, q)
	} else {
		pipe.ZAdd(ctx, key, redis.Z{Score: float64(next.UnixMilli()), Member: q})
	}
	pipe.ZRem(ctx, c.urgentKey(), q)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("queue set next %d: %w", q, err)
	}
	// An add from here on writes its own ZADD LT after ours were cleared.
	pipe = c.rdb.Pipeline()
	p := c.probe(ctx, pipe, q)
	_, _ = pipe.Exec(ctx) // each command's error is read by p.err
	if err := p.err(); err != nil {
		return fmt.Errorf("queue set next %d: %w", q, err)
	}
	pipe = c.rdb.Pipeline()
	if at, ok := p.next(c, time.Time{}); ok {
		pipe.ZAddLT(ctx, key, redis.Z{Score: at, Member: q})
	}
	if at, ok := p.high(c); ok {
		pipe.ZAddLT(ctx, c.urgentKey(), redis.Z{Score: at, Member: q})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("queue set next %d: %w", q, err)
	}
	return nil
}

// UrgentQueues lists up to max queues that have high-priority work (a high
// user to take or prepare, a high chunk to begin) by t, earliest first. It
// is a hint kept like the next index (DueQueues): an add of a high reminder
// names its queue, SetNext sets or clears the queue's entry from the queue
// itself, and Reconcile adds what an update lost. A scheduler short of
// slots works these queues first and leaves a queue whose high work is done
// for one of them (see HighDue), so that high pushes go first across
// queues, not only within one.
func (c *Client) UrgentQueues(ctx context.Context, t time.Time, max int) ([]int, error) {
	return c.queuesBy(ctx, c.urgentKey(), t, max)
}

// HighDue reports whether queue q holds high-priority work due by t: a
// high user to take or a high chunk to begin. (High work only to prepare
// ahead of due is not counted: a slot may leave it for another queue's
// due high work.)
func (c *Client) HighDue(ctx context.Context, q int, t time.Time) (bool, error) {
	k := c.keys(q)
	ms := strconv.FormatInt(t.UnixMilli(), 10)
	pipe := c.rdb.Pipeline()
	due := pipe.ZCount(ctx, k.dueHigh, "-inf", ms)
	ready := pipe.ZCount(ctx, k.readyHigh, "-inf", ms)
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("queue high due %d: %w", q, err)
	}
	return due.Val()+ready.Val() > 0, nil
}

// probe reads what tells when a queue has work next: its earliest due
// user, flight deadline and ready chunk, how many chunks are ready, whether
// it is being moved and whether its lease is held.
type probe struct {
	due, ready [3]*redis.ZSliceCmd // per class, as queueKeys.dueSets
	readyN     [3]*redis.IntCmd
	flight     *redis.ZSliceCmd
	lease      *redis.IntCmd
	epoch      *redis.StringCmd
}

func (c *Client) probe(ctx context.Context, pipe redis.Pipeliner, q int) probe {
	k := c.keys(q)
	p := probe{
		flight: pipe.ZRangeWithScores(ctx, k.flight, 0, 0),
		lease:  pipe.Exists(ctx, k.lease),
		epoch:  pipe.Get(ctx, k.epoch),
	}
	due, ready := k.dueSets(), k.readySets()
	for i := range due {
		p.due[i] = pipe.ZRangeWithScores(ctx, due[i], 0, 0)
		p.ready[i] = pipe.ZRangeWithScores(ctx, ready[i], 0, 0)
		p.readyN[i] = pipe.ZCard(ctx, ready[i])
	}
	return p
}

// err is the first error of p's commands (an absent epoch is none).
func (p probe) err() error {
	if err := p.epoch.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	errs := []error{p.flight.Err(), p.lease.Err()}
	for i := range p.due {
		errs = append(errs, p.due[i].Err(), p.ready[i].Err(), p.readyN[i].Err())
	}
	return errors.Join(errs...)
}

// next is the queue's next-work time in ms (as next_work in
// lua/prelude.lua computes it), and whether it has any. With orphans set,
// flights whose lease is gone (their holder died) count as work at orphans.
func (p probe) next(c *Client, orphans time.Time) (float64, bool) {
	best, ok := 0.0, false
	consider := func(v float64) {
		if !ok || v < best {
			best, ok = v, true
		}
	}
	early := p.early(c)
	for _, due := range p.due {
		if d := due.Val(); len(d) == 1 {
			consider(d[0].Score - early)
		}
	}
	if f := p.flight.Val(); len(f) == 1 {
		s := f[0].Score
		if !orphans.IsZero() && p.lease.Val() == 0 {
			s = float64(orphans.UnixMilli()) // orphaned flights: take them over now
		}
		consider(s)
	}
	for _, ready := range p.ready {
		if r := ready.Val(); len(r) == 1 {
			consider(r[0].Score)
		}
	}
	return best, ok
}

// early is how much before a due user's score the queue has work for it:
// PrepareAhead while it may prepare (as pop.lua's may_prepare: fewer than
// MaxReady ready chunks, not being moved), else nothing.
func (p probe) early(c *Client) float64 {
	readyN := p.readyN[0].Val() + p.readyN[1].Val() + p.readyN[2].Val()
	if c.aheadMs > 0 && readyN < int64(c.maxReady) && !movingLayout(p.epoch.Val()) {
		return float64(c.aheadMs)
	}
	return 0
}

// high is when the queue has high-priority work next in ms (its earliest
// high user, early as in next, or high ready chunk), and whether it has any.
func (p probe) high(c *Client) (float64, bool) {
	best, ok := 0.0, false
	if d := p.due[0].Val(); len(d) == 1 {
		best, ok = d[0].Score-p.early(c), true
	}
	if r := p.ready[0].Val(); len(r) == 1 && (!ok || r[0].Score < best) {
		best, ok = r[0].Score, true
	}
	return best, ok
}

// movingLayout reports whether a queue's epoch value is a move in progress.
func movingLayout(epoch string) bool {
	if epoch == "" {
		return false
	}
	l, err := parseLayoutKey(epoch)
	return err == nil && !l.Stable()
}

// Time returns the Redis server's clock, which every due check uses.
func (c *Client) Time(ctx context.Context) (time.Time, error) {
	t, err := c.rdb.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("queue time: %w", err)
	}
	return t, nil
}

func nowArg(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

func leaseErr(op string, q int, err error) error {
	if strings.Contains(err.Error(), "LEASE lost") {
		return fmt.Errorf("queue %s %d: %w", op, q, ErrLeaseLost)
	}
	if strings.Contains(err.Error(), "DEAD full") {
		return fmt.Errorf("queue %s %d: %w", op, q, ErrDeadFull)
	}
	return fmt.Errorf("queue %s %d: %w", op, q, err)
}

var errBadPush = errors.New("malformed push")

// Indexed reports, for each entry, whether its queue under a fixed count n
// holds that (user, template) in any state (pending, cancelled, taken).
// One pipelined round trip; no script, so it is cheap to run over many.
func (c *Client) Indexed(ctx context.Context, n int, entries []Entry) ([]bool, error) {
	return c.indexed(ctx, Layout{From: n, To: n, Span: n}, entries)
}

// indexed is Indexed under layout l: any state found by States.
func (c *Client) indexed(ctx context.Context, l Layout, entries []Entry) ([]bool, error) {
	st, err := c.States(ctx, l, entries)
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(entries))
	for i, s := range st {
		out[i] = s != 0
	}
	return out, nil
}

// Pause pauses emitting for every worker of this prefix. Nothing is lost
// while paused: subscriptions and cancels go on, and on Resume the backlog
// is popped earliest first.
func (c *Client) Pause(ctx context.Context) error {
	if err := c.rdb.Set(ctx, c.pausedKey(), "1", 0).Err(); err != nil {
		return fmt.Errorf("queue pause: %w", err)
	}
	return nil
}

// Resume undoes Pause.
func (c *Client) Resume(ctx context.Context) error {
	if err := c.rdb.Del(ctx, c.pausedKey()).Err(); err != nil {
		return fmt.Errorf("queue resume: %w", err)
	}
	return nil
}

// Paused reports whether emitting is paused.
func (c *Client) Paused(ctx context.Context) (bool, error) {
	n, err := c.rdb.Exists(ctx, c.pausedKey()).Result()
	if err != nil {
		return false, fmt.Errorf("queue paused: %w", err)
	}
	return n == 1, nil
}

// Reconcile repairs the next index for queues 0..n-1 from the queues
// themselves, in one pipelined round trip: each queue's earliest due user
// (early by PrepareAhead while it may prepare), its earliest flight
// deadline and ready chunk and, when flights sit unleased (their holder
// died), now. It is the backstop for an update of the index lost with a
// worker killed between its queue writes and its index write.
func (c *Client) Reconcile(ctx context.Context, n int, now time.Time) error {
	pipe := c.rdb.Pipeline()
	probes := make([]probe, n)
	for q := 0; q < n; q++ {
		probes[q] = c.probe(ctx, pipe, q)
	}
	_, _ = pipe.Exec(ctx) // each command's error is read by p.err
	for _, p := range probes {
		if err := p.err(); err != nil {
			return fmt.Errorf("queue reconcile: %w", err)
		}
	}
	var zs, hs []redis.Z
	for q, p := range probes {
		if at, ok := p.next(c, now); ok {
			zs = append(zs, redis.Z{Score: at, Member: q})
		}
		if at, ok := p.high(c); ok {
			hs = append(hs, redis.Z{Score: at, Member: q})
		}
	}
	pipe = c.rdb.Pipeline()
	if len(zs) > 0 {
		pipe.ZAddLT(ctx, c.nextKey(), zs...)
	}
	if len(hs) > 0 {
		pipe.ZAddLT(ctx, c.urgentKey(), hs...)
	}
	if len(zs)+len(hs) == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("queue reconcile: %w", err)
	}
	return nil
}
