package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Layout is how users are spread over the queues. When no move runs, From
// equals To and a user's reminders live in queue Shard(user, To). While the
// queue count changes from From to To, a user's record is in its old queue
// Shard(user, From) until the mover takes it, then in its new queue
// Shard(user, To); every write finds it (see Router and route in
// lua/prelude.lua). Each change of N gets a new generation.
//
// The recorded layout lives in the key <prefix>:layout, and each queue's
// epoch key holds the layout that queue follows. A queue's epoch changes
// before the recorded layout does, so a writer holding an old layout is
// told by the first queue it touches.
type Layout struct {
	Gen  int64 // generation, new for every change of N
	From int   // queue count users are moved from; equals To when no move runs
	To   int   // the queue count N
	// Span is how many queues may hold work: max(From, To) during a move,
	// and queues beyond To stay counted until their flights and marks drain.
	Span int
}

// Stable reports whether no move is running.
func (l Layout) Stable() bool { return l.From == l.To }

// key is the layout as queues' epoch keys hold it: "gen:from:to".
func (l Layout) key() string {
	return strconv.FormatInt(l.Gen, 10) + ":" + strconv.Itoa(l.From) + ":" + strconv.Itoa(l.To)
}

func (l Layout) String() string {
	if l.Stable() {
		return fmt.Sprintf("%d queues (generation %d, span %d)", l.To, l.Gen, l.Span)
	}
	return fmt.Sprintf("moving %d → %d queues (generation %d, span %d)", l.From, l.To, l.Gen, l.Span)
}

// Homes are the queues that may hold userID's record now: its queue under
// To, and during a move first its queue under From.
func (l Layout) Homes(userID int64) []int {
	home := Shard(userID, l.To)
	if l.Stable() {
		return []int{home}
	}
	if old := Shard(userID, l.From); old != home {
		return []int{old, home}
	}
	return []int{home}
}

var errBadLayout = errors.New("queue: malformed layout")

func parseLayoutKey(s string) (Layout, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return Layout{}, fmt.Errorf("%w: %q", errBadLayout, s)
	}
	gen, err1 := strconv.ParseInt(parts[0], 10, 64)
	from, err2 := strconv.Atoi(parts[1])
	to, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || from < 1 || to < 1 || gen < 0 {
		return Layout{}, fmt.Errorf("%w: %q", errBadLayout, s)
	}
	return Layout{Gen: gen, From: from, To: to, Span: max(from, to)}, nil
}

// LayoutStatus is the recorded layout with the progress of its move.
type LayoutStatus struct {
	Layout
	Moved    int64     // users moved so far by this generation's move
	Total    int64     // records the old queues held when the move began
	Began    time.Time // when this generation's move began (zero: never moved)
	Finished time.Time // when it finished (zero: running, or never moved)
}

// LayoutStatus reads the recorded layout; found is false when none is
// recorded (a new deployment, or Redis lost its data).
func (c *Client) LayoutStatus(ctx context.Context) (st LayoutStatus, found bool, err error) {
	m, err := c.rdb.HGetAll(ctx, c.layoutKey()).Result()
	if err != nil {
		return LayoutStatus{}, false, fmt.Errorf("queue layout: %w", err)
	}
	if len(m) == 0 {
		return LayoutStatus{}, false, nil
	}
	num := func(f string) int64 {
		n, e := strconv.ParseInt(m[f], 10, 64)
		if e != nil {
			err = errors.Join(err, fmt.Errorf("%w: field %s=%q", errBadLayout, f, m[f]))
		}
		return n
	}
	st.Gen, st.From, st.To, st.Span = num("gen"), int(num("from")), int(num("to")), int(num("span"))
	st.Moved, st.Total = num("moved"), num("total")
	if ms := num("began"); ms > 0 {
		st.Began = time.UnixMilli(ms)
	}
	if ms := num("finished"); ms > 0 {
		st.Finished = time.UnixMilli(ms)
	}
	if err == nil && (st.From < 1 || st.To < 1 || st.Span < max(st.From, st.To)) {
		err = fmt.Errorf("%w: %+v", errBadLayout, st.Layout)
	}
	if err != nil {
		return LayoutStatus{}, false, fmt.Errorf("queue layout: %w", err)
	}
	return st, true, nil
}

// stamp sets the epoch of queues 0..n-1 to l, in one pipeline.
func (c *Client) stamp(ctx context.Context, l Layout, n int) error {
	pipe := c.rdb.Pipeline()
	for q := 0; q < n; q++ {
		pipe.Set(ctx, c.keys(q).epoch, l.key(), 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("queue layout %s: stamp queues: %w", l.key(), err)
	}
	return nil
}

// InitLayout records a layout of n queues when none is recorded, stamping
// queues 0..n-1 with it, and returns the recorded layout. Its generation is
// the time in milliseconds, so it is newer than any layout a writer may
// remember from before Redis lost its data. Run it under the coordinator's
// lock.
func (c *Client) InitLayout(ctx context.Context, n int) (LayoutStatus, error) {
	if n < 1 {
		return LayoutStatus{}, fmt.Errorf("queue init layout: queue count %d < 1", n)
	}
	if st, ok, err := c.LayoutStatus(ctx); err != nil || ok {
		return st, err
	}
	l := Layout{Gen: time.Now().UnixMilli(), From: n, To: n, Span: n}
	if err := c.stamp(ctx, l, n); err != nil {
		return LayoutStatus{}, err
	}
	err := c.rdb.HSet(ctx, c.layoutKey(), "gen", l.Gen, "from", n, "to", n, "span", n,
		"moved", 0, "total", 0, "began", 0, "finished", 0).Err()
	if err != nil {
		return LayoutStatus{}, fmt.Errorf("queue init layout: %w", err)
	}
	return LayoutStatus{Layout: l}, nil
}

// BeginMove starts moving from the stable layout cur to n queues: every
// queue that may hold work follows the new layout from now on, and the
// recorded layout says so last. Run it, MoveQueue for each old queue, and
// FinishMove under the coordinator's lock.
func (c *Client) BeginMove(ctx context.Context, cur Layout, n int) (Layout, error) {
	if !cur.Stable() {
		return Layout{}, fmt.Errorf("queue begin move: a move is running (%s)", cur)
	}
	if n < 1 || n == cur.To {
		return Layout{}, fmt.Errorf("queue begin move: bad target %d from %d", n, cur.To)
	}
	next := Layout{Gen: cur.Gen + 1, From: cur.To, To: n, Span: max(cur.Span, n)}
	pipe := c.rdb.Pipeline()
	lens := make([]*redis.IntCmd, next.From)
	for q := range lens {
		lens[q] = pipe.HLen(ctx, c.keys(q).items)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return Layout{}, fmt.Errorf("queue begin move: %w", err)
	}
	var total int64
	for _, l := range lens {
		total += l.Val()
	}
	if err := c.stamp(ctx, next, next.Span); err != nil {
		return Layout{}, err
	}
	err := c.rdb.HSet(ctx, c.layoutKey(), "gen", next.Gen, "from", next.From, "to", next.To, "span", next.Span,
		"moved", 0, "total", total, "began", time.Now().UnixMilli(), "finished", 0).Err()
	if err != nil {
		return Layout{}, fmt.Errorf("queue begin move: %w", err)
	}
	return next, nil
}

// MoveQueue moves every user of old queue q whose home under l.To is
// another queue, batch users per script call, and returns how many it
// moved. It first finishes a move that a mover which died left in q's
// moving hash. Writers and schedulers go on meanwhile: a user being moved
// is out of reach for a moment (writes retry), and everywhere else.
func (c *Client) MoveQueue(ctx context.Context, l Layout, q, batch int) (int, error) {
	if l.Stable() || q < 0 || q >= l.From || batch < 1 {
		return 0, fmt.Errorf("queue move %d: bad arguments (layout %s, batch %d)", q, l, batch)
	}
	k := c.keys(q)
	left, err := c.rdb.HGetAll(ctx, k.moving).Result()
	if err != nil {
		return 0, fmt.Errorf("queue move %d: %w", q, err)
	}
	if len(left) > 0 {
		pairs := make([]string, 0, 2*len(left))
		for u, rec := range left {
			pairs = append(pairs, u, rec)
		}
		if err := c.moveIn(ctx, l, q, pairs); err != nil {
			return 0, err
		}
	}
	moved := 0
	var cursor uint64
	for {
		kv, next, err := c.rdb.HScan(ctx, k.items, cursor, "", int64(batch)).Result()
		if err != nil {
			return moved, fmt.Errorf("queue move %d: scan: %w", q, err)
		}
		args := []any{l.key()}
		for i := 0; i < len(kv); i += 2 {
			u, err := strconv.ParseInt(kv[i], 10, 64)
			if err != nil {
				return moved, fmt.Errorf("queue move %d: user %q: %w", q, kv[i], err)
			}
			if Shard(u, l.To) != q {
				args = append(args, kv[i])
			}
		}
		if len(args) > 1 {
			pairs, err := moveOutScript.Run(ctx, c.rdb, k.moveOutKeys(), args...).StringSlice()
			if err != nil {
				return moved, fmt.Errorf("queue move %d: out: %w", q, err)
			}
			if err := c.moveIn(ctx, l, q, pairs); err != nil {
				return moved, err
			}
			moved += len(pairs) / 2
			if err := c.rdb.HIncrBy(ctx, c.layoutKey(), "moved", int64(len(pairs)/2)).Err(); err != nil {
				return moved, fmt.Errorf("queue move %d: progress: %w", q, err)
			}
		}
		if cursor = next; cursor == 0 {
			return moved, nil
		}
	}
}

// moveIn merges pairs (user, record) taken out of queue from into their new
// queues, tells the balancer when they are due, and drops them from from's
// moving hash.
func (c *Client) moveIn(ctx context.Context, l Layout, from int, pairs []string) error {
	if len(pairs) == 0 {
		return nil
	}
	byDest := map[int][]any{}
	users := make([]any, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		u, err := strconv.ParseInt(pairs[i], 10, 64)
		if err != nil {
			return fmt.Errorf("queue move %d: user %q: %w", from, pairs[i], err)
		}
		d := Shard(u, l.To)
		if byDest[d] == nil {
			byDest[d] = []any{l.key(), c.tombTTLms, c.classWinMs}
		}
		byDest[d] = append(byDest[d], pairs[i], pairs[i+1])
		users = append(users, pairs[i])
	}
	for d, args := range byDest {
		k := c.keys(d)
		best, err := moveInScript.Run(ctx, c.rdb, k.moveInKeys(), args...).Text()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("queue move %d→%d: in: %w", from, d, err)
		}
		if best != "" {
			ms, err := strconv.ParseInt(best, 10, 64)
			if err != nil {
				return fmt.Errorf("queue move %d→%d: score %q: %w", from, d, best, err)
			}
			if err := c.rdb.ZAddLT(ctx, c.nextKey(), redis.Z{Score: float64(ms), Member: d}).Err(); err != nil {
				return fmt.Errorf("queue move %d→%d: next: %w", from, d, err)
			}
		}
	}
	if err := moveDoneScript.Run(ctx, c.rdb, []string{c.keys(from).moving}, users...).Err(); err != nil {
		return fmt.Errorf("queue move %d: done: %w", from, err)
	}
	return nil
}

// FinishMove ends the move l once MoveQueue has run for every old queue:
// every queue follows the stable layout of l.To queues, then the recorded
// layout says so. It fails, changing nothing, if a moving hash still holds
// a user.
func (c *Client) FinishMove(ctx context.Context, l Layout) (Layout, error) {
	if l.Stable() {
		return Layout{}, fmt.Errorf("queue finish move: no move runs (%s)", l)
	}
	pipe := c.rdb.Pipeline()
	left := make([]*redis.IntCmd, l.From)
	for q := range left {
		left[q] = pipe.HLen(ctx, c.keys(q).moving)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return Layout{}, fmt.Errorf("queue finish move: %w", err)
	}
	for q, n := range left {
		if n.Val() > 0 {
			return Layout{}, fmt.Errorf("queue finish move: queue %d still has %d users in transit", q, n.Val())
		}
	}
	done := Layout{Gen: l.Gen, From: l.To, To: l.To, Span: l.Span}
	if err := c.stamp(ctx, done, done.Span); err != nil {
		return Layout{}, err
	}
	err := c.rdb.HSet(ctx, c.layoutKey(), "from", done.From, "to", done.To, "finished", time.Now().UnixMilli()).Err()
	if err != nil {
		return Layout{}, fmt.Errorf("queue finish move: %w", err)
	}
	return done, nil
}

// Retire lowers the span of the stable layout l to l.To once queues
// l.To..l.Span-1 (emptied by a move to fewer queues) hold nothing any more:
// no reminders, flights or marks. It reports whether it did.
func (c *Client) Retire(ctx context.Context, l Layout) (Layout, bool, error) {
	if !l.Stable() || l.Span <= l.To {
		return l, false, nil
	}
	pipe := c.rdb.Pipeline()
	var cmds []*redis.IntCmd
	for q := l.To; q < l.Span; q++ {
		k := c.keys(q)
		cmds = append(cmds, pipe.Exists(ctx, k.due, k.items, k.flight, k.marks, k.moving, k.ready,
			k.dueHigh, k.dueLow, k.readyHigh, k.readyLow))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return l, false, fmt.Errorf("queue retire: %w", err)
	}
	for _, c := range cmds {
		if c.Val() > 0 {
			return l, false, nil
		}
	}
	if err := c.rdb.HSet(ctx, c.layoutKey(), "span", l.To).Err(); err != nil {
		return l, false, fmt.Errorf("queue retire: %w", err)
	}
	l.Span = l.To
	return l, true, nil
}

// Router writes reminders to the queue that holds their user under the
// current layout, following a move while it runs: a write goes to the
// user's old queue, which keeps it while the user's record is there and
// otherwise forwards it to the new one. A queue that follows a newer layout
// says so, and the router adopts it and retries.
type Router struct {
	c        *Client
	fallback func() int
	cur      atomic.Pointer[Layout]
	// RetryFor bounds how long a write retries while layouts change or its
	// user is being moved; default 10 s.
	RetryFor time.Duration
}

// NewRouter returns a router over c. Until a layout is recorded in Redis,
// it writes as if there were fallback() queues.
func (c *Client) NewRouter(fallback func() int) *Router {
	return &Router{c: c, fallback: fallback, RetryFor: 10 * time.Second}
}

// Layout is the router's view of the layout, read from Redis on first use.
func (r *Router) Layout(ctx context.Context) (Layout, error) {
	if l := r.cur.Load(); l != nil {
		return *l, nil
	}
	return r.Refresh(ctx)
}

// Refresh reads the recorded layout into the router's view and returns it.
func (r *Router) Refresh(ctx context.Context) (Layout, error) {
	st, ok, err := r.c.LayoutStatus(ctx)
	if err != nil {
		return Layout{}, err
	}
	if !ok {
		n := r.fallback()
		st.Layout = Layout{From: n, To: n, Span: n}
	}
	r.cur.Store(&st.Layout)
	return st.Layout, nil
}

// Span is how many queues may hold work under the router's view: the
// scheduler visits queues 0..Span-1. Before the first read it is the
// fallback count.
func (r *Router) Span() int {
	if l := r.cur.Load(); l != nil {
		return l.Span
	}
	return r.fallback()
}

// Add indexes e in the queue that holds its user (see Client.Add).
func (r *Router) Add(ctx context.Context, e Entry) error {
	return r.write(ctx, addScript, "add", e)
}

// Cancel replaces e's reminder by a tombstone (see Client.Cancel).
func (r *Router) Cancel(ctx context.Context, e Entry) error {
	return r.write(ctx, cancelScript, "cancel", e)
}

func (r *Router) write(ctx context.Context, s *redis.Script, op string, e Entry) error {
	if err := checkEntry(op, e); err != nil {
		return err
	}
	l, err := r.Layout(ctx)
	if err != nil {
		return fmt.Errorf("queue %s: %w", op, err)
	}
	give := time.Now().Add(r.RetryFor)
	for attempt := 0; ; attempt++ {
		status, other, err := r.once(ctx, s, op, l, e)
		if err != nil {
			return err
		}
		switch status {
		case stale:
			if l, err = r.adopt(ctx, l, other); err != nil {
				return fmt.Errorf("queue %s user %d: %w", op, e.UserID, err)
			}
		case moving:
		default:
			return writeErr(op, e, status)
		}
		if time.Now().After(give) {
			return fmt.Errorf("queue %s user %d: layout kept changing for %v: %w", op, e.UserID, r.RetryFor, ErrStaleCount)
		}
		if attempt >= 2 {
			t := time.NewTimer(time.Duration(min(attempt, 20)) * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("queue %s user %d: %w", op, e.UserID, ctx.Err())
			case <-t.C:
			}
		}
	}
}

// once tries the write under l: at the user's queue, or during a move at its
// old queue first, which may forward it to the new one.
func (r *Router) once(ctx context.Context, s *redis.Script, op string, l Layout, e Entry) (int64, string, error) {
	home := Shard(e.UserID, l.To)
	w := writeCall{script: s, op: op, layoutKey: l.key(), queue: home, home: home}
	if l.Stable() {
		return r.c.writeAt(ctx, w, e)
	}
	old := w
	old.queue = Shard(e.UserID, l.From)
	status, other, err := r.c.writeAt(ctx, old, e)
	if err != nil || status != forward {
		return status, other, err
	}
	w.forwarded = true
	return r.c.writeAt(ctx, w, e)
}

// adopt takes the layout a queue answered with, or the recorded one when
// that is at least as new: epochs change before the record, so while a
// change is being stamped, queues disagree for a moment.
func (r *Router) adopt(ctx context.Context, l Layout, other string) (Layout, error) {
	next, err := parseLayoutKey(other)
	if err != nil {
		return l, err
	}
	if st, ok, err := r.c.LayoutStatus(ctx); err == nil && ok && st.Gen >= next.Gen && st.key() != l.key() {
		next = st.Layout
	}
	r.cur.Store(&next)
	return next, nil
}

// Observe updates the router's view with a layout read elsewhere (a watch
// loop), unless the view is newer.
func (r *Router) Observe(l Layout) {
	cur := r.cur.Load()
	if cur != nil && cur.Gen > l.Gen && l.Gen != 0 {
		return
	}
	if cur != nil && cur.Gen == l.Gen && cur.Stable() && !l.Stable() {
		return
	}
	r.cur.Store(&l)
}

// Records reads, for each entry, what the index holds for its (user,
// template) under the router's view of the layout (see Client.Records).
func (r *Router) Records(ctx context.Context, entries []Entry) ([]RecordEntry, error) {
	l, err := r.Layout(ctx)
	if err != nil {
		return nil, err
	}
	return r.c.Records(ctx, l, entries)
}

// Indexed reports, for each entry, whether a queue that may hold its user
// under the router's view holds that (user, template) in any state, or
// holds it in transit between queues (see Client.States).
func (r *Router) Indexed(ctx context.Context, entries []Entry) ([]bool, error) {
	l, err := r.Layout(ctx)
	if err != nil {
		return nil, err
	}
	return r.c.indexed(ctx, l, entries)
}
