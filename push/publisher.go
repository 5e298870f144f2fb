package push

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/nsqio/go-nsq"
)

// Defaults and bounds of PublisherConfig.
const (
	// DefaultMaxMessageBytes keeps a batch 4 KiB under nsqd's default
	// --max-msg-size of 1 MiB.
	DefaultMaxMessageBytes = 1<<20 - 4<<10
	// DefaultMaxBodyBytes keeps one MPUB 64 KiB under nsqd's default
	// --max-body-size of 5 MiB.
	DefaultMaxBodyBytes = 5<<20 - 64<<10
	// DefaultMaxPushesPerBatch is the default number of pushes in a batch.
	DefaultMaxPushesPerBatch = 500
	// DefaultRetryMin is the first pause after a failed MPUB.
	DefaultRetryMin = 50 * time.Millisecond
	// DefaultRetryMax caps the pause between failed MPUBs.
	DefaultRetryMax = 2 * time.Second
	// DefaultAttemptTimeout bounds how long one MPUB attempt waits for
	// nsqd's answers before the connection is dropped and the batches not
	// yet accepted are retried.
	DefaultAttemptTimeout = 10 * time.Second
	// MinMessageBytes is the smallest MaxMessageBytes accepted: room for a
	// batch's envelope and a push with a few items.
	MinMessageBytes = 1 << 10
)

// mpubOverhead is what MPUB adds around its messages: a 4-byte count, then
// a 4-byte size before each message.
const mpubOverhead = 4

// Errors Publish returns that callers may branch on (with errors.Is).
var (
	// ErrTooLarge means one push alone does not fit in MaxMessageBytes;
	// nothing was published.
	ErrTooLarge = errors.New("push: push larger than the message size limit")
	// ErrRejected means nsqd refused a batch in a way retrying cannot fix
	// (E_BAD_MESSAGE, E_BAD_BODY, E_BAD_TOPIC: usually limits set above
	// nsqd's own); other batches of the call may have been accepted.
	ErrRejected = errors.New("push: nsqd rejected the batch")
	// ErrStopped means the Publisher or Consumer was stopped.
	ErrStopped = errors.New("push: stopped")
	// ErrWithheld means PublishWhile's check answered false: nothing was
	// published.
	ErrWithheld = errors.New("push: withheld: the publish was no longer valid")
)

// PublisherConfig configures a Publisher. Zero values mean the defaults.
type PublisherConfig struct {
	// NSQDAddr is nsqd's TCP address (host:port). Required.
	NSQDAddr string
	// Topic is the NSQ topic to publish to, for example "coupon_push".
	// Required; must be a valid NSQ topic name.
	Topic string
	// MaxMessageBytes bounds one batch message, envelope included; no
	// message exceeds it, and a single push bigger than it is ErrTooLarge.
	// It must stay at or below nsqd's --max-msg-size. 0 means
	// DefaultMaxMessageBytes; otherwise at least MinMessageBytes.
	MaxMessageBytes int
	// MaxBodyBytes bounds one MPUB command's body (all its messages and
	// their sizes); it must stay at or below nsqd's --max-body-size and be
	// at least MaxMessageBytes+8. 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int
	// MaxPushesPerBatch bounds the pushes in one batch. 0 means
	// DefaultMaxPushesPerBatch.
	MaxPushesPerBatch int
	// RetryMin is the first pause after a failed MPUB; pauses then double
	// up to RetryMax, each with jitter (between half and all of it). 0 means
	// DefaultRetryMin.
	RetryMin time.Duration
	// RetryMax caps the pause between failed MPUBs. 0 means
	// DefaultRetryMax; otherwise at least RetryMin.
	RetryMax time.Duration
	// AttemptTimeout bounds one MPUB attempt: nsqd's answers not received
	// by then count as failures (retried like any other). 0 means
	// DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// NSQ holds the TLS and auth settings of the connection.
	NSQ NSQAuth
	// Logger receives retries (warn) and go-nsq's own lines (debug). nil
	// discards.
	Logger *slog.Logger
}

// Validate reports every field of c that is unusable, joined, with zero
// values taken as their defaults.
func (c PublisherConfig) Validate() error {
	errs := []error{validateNSQ(c.NSQDAddr, c.Topic)}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	d := c.WithDefaults()
	if c.MaxMessageBytes < 0 || d.MaxMessageBytes < MinMessageBytes {
		bad("push: MaxMessageBytes %d is below %d", c.MaxMessageBytes, MinMessageBytes)
	}
	if c.MaxBodyBytes < 0 || d.MaxBodyBytes < d.MaxMessageBytes+2*mpubOverhead {
		bad("push: MaxBodyBytes %d is below MaxMessageBytes (%d) + 8", d.MaxBodyBytes, d.MaxMessageBytes)
	}
	if c.MaxPushesPerBatch < 0 {
		bad("push: MaxPushesPerBatch %d is negative", c.MaxPushesPerBatch)
	}
	if c.RetryMin < 0 {
		bad("push: RetryMin %s is negative", c.RetryMin)
	}
	if d.RetryMax < d.RetryMin {
		bad("push: RetryMax %s is below RetryMin %s", d.RetryMax, d.RetryMin)
	}
	if c.AttemptTimeout < 0 {
		bad("push: AttemptTimeout %s is negative", c.AttemptTimeout)
	}
	return errors.Join(errs...)
}

// validateNSQ checks an nsqd address and a topic name.
func validateNSQ(addr, topic string) error {
	if addr == "" {
		return errors.New("push: NSQDAddr is required")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("push: NSQDAddr %q: %w", addr, err)
	}
	if !nsq.IsValidTopicName(topic) {
		return fmt.Errorf("push: Topic %q is not a valid NSQ topic name", topic)
	}
	return nil
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c PublisherConfig) WithDefaults() PublisherConfig {
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = max(DefaultMaxBodyBytes, c.MaxMessageBytes+2*mpubOverhead)
	}
	if c.MaxPushesPerBatch == 0 {
		c.MaxPushesPerBatch = DefaultMaxPushesPerBatch
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(DefaultRetryMax, c.RetryMin)
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = DefaultAttemptTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Publisher packs pushes into batch messages and publishes them to one nsqd
// with MPUB. It is safe for concurrent use; calls share one connection and
// their MPUBs are pipelined on it.
type Publisher struct {
	cfg      PublisherConfig
	nsqCfg   *nsq.Config
	log      *slog.Logger
	stop     chan struct{}
	stopOnce sync.Once
	arenas   sync.Pool // *[]byte: encode buffers of finished Publish calls

	mu       sync.Mutex
	producer *nsq.Producer // nil until needed and after a failure
	stopped  bool

	// enqueue serializes handing MPUBs to the Producer (not waiting for
	// nsqd's answers). go-nsq v1.1.0's connect reads the Producer's loggers
	// without the lock SetLogger takes, so a SetLogger (see
	// currentProducer) must never run while another Publish is connecting.
	enqueue sync.Mutex
}

// NewPublisher validates cfg and returns a Publisher. It does not connect:
// the first Publish does, and later ones reconnect as needed.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	nc := nsq.NewConfig()
	nc.DialTimeout = time.Second
	nc.ReadTimeout = nsqReadTimeout
	nc.WriteTimeout = 5 * time.Second // one MPUB body is up to 5 MiB
	cfg.NSQ.apply(nc, cfg.NSQDAddr)
	if err := nc.Validate(); err != nil {
		return nil, fmt.Errorf("push: nsq config: %w", err)
	}
	return &Publisher{
		cfg:    cfg,
		nsqCfg: nc,
		log:    cfg.Logger.With("nsqd", cfg.NSQDAddr, "topic", cfg.Topic),
		stop:   make(chan struct{}),
	}, nil
}

// currentProducer returns the go-nsq Producer to send on, creating one if
// there is none.
//
// A go-nsq Producer (v1.1.0) reconnects in place after its connection
// dies, and its exiting router goroutine still reads the old connection
// after the last point the reconnect synchronizes with, a data race. So a
// Producer that saw a failure is discarded, never reconnected, and each use
// first calls SetLogger: it takes the lock that the router's last log line
// takes after that read, which orders the read before any reconnect of a
// Producer whose connection died while idle.
func (p *Publisher) currentProducer() (*nsq.Producer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil, ErrStopped
	}
	if p.producer == nil {
		prod, err := nsq.NewProducer(p.cfg.NSQDAddr, p.nsqCfg)
		if err != nil {
			return nil, fmt.Errorf("push: new nsq producer: %w", err)
		}
		p.producer = prod
	}
	p.producer.SetLogger(nsqLog(p.cfg.Logger))
	return p.producer, nil
}

// discard stops prod and, if it is still the current Producer, forgets it
// so that the next send starts a fresh one. Calls still using prod get
// nsq.ErrStopped, which they retry.
func (p *Publisher) discard(prod *nsq.Producer) {
	p.mu.Lock()
	if p.producer == prod {
		p.producer = nil
	}
	p.mu.Unlock()
	prod.Stop()
}

// Publish splits pushes into batches (at most MaxPushesPerBatch pushes and
// MaxMessageBytes bytes each), sends them in as few MPUBs as MaxBodyBytes
// allows, and returns nil only once nsqd has accepted every batch. Each
// batch gets a fresh random id and its encoding time as EmittedAt.
//
// Every push is validated before anything is sent: an invalid push
// (ErrInvalid) or one that cannot fit in a message (ErrTooLarge) fails the
// call with nothing published. While nsqd is down or failing, the batches
// it has not accepted are retried, unchanged, with capped exponential
// backoff and jitter until ctx is done (the error then wraps ctx.Err()) or
// the Publisher is stopped (ErrStopped). After an error some batches may
// have been accepted: delivery is at least once, and the consumer drops a
// repeated push by its id.
func (p *Publisher) Publish(ctx context.Context, pushes []Push) error {
	return p.PublishWhile(ctx, pushes, nil)
}

// PublishWhile is Publish, but once the batches are encoded, right before
// the first goes to nsqd, it asks valid (when not nil) and publishes
// nothing if it answers false (ErrWithheld). The scheduler passes its
// lease's check, so that what may run between the check and the write is
// as short as it can be.
func (p *Publisher) PublishWhile(ctx context.Context, pushes []Push, valid func() bool) error {
	if len(pushes) == 0 {
		return nil
	}
	select {
	case <-p.stop:
		return ErrStopped
	default:
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("push: publish %d pushes: %w", len(pushes), err)
	}
	msgs, arenas, err := p.encode(pushes)
	if err != nil {
		return err
	}
	if valid != nil && !valid() {
		p.release(arenas)
		return ErrWithheld
	}
	if err := p.send(ctx, group(msgs, p.cfg.MaxBodyBytes)); err != nil {
		return err // go-nsq may still hold msgs: no reuse
	}
	p.release(arenas)
	return nil
}

// Encode validates pushes and encodes them into batch messages, as
// Publish would send them, packed into one buffer that PublishEncodedWhile
// sends later, unchanged (same batch ids): each message as a 4-byte
// big-endian length and its bytes. The scheduler seals work it prepares
// ahead of due this way, so that at due only the publish is left.
func (p *Publisher) Encode(pushes []Push) ([]byte, error) {
	if len(pushes) == 0 {
		return nil, nil
	}
	msgs, arenas, err := p.encode(pushes)
	if err != nil {
		return nil, err
	}
	size := 0
	for _, m := range msgs {
		size += 4 + len(m)
	}
	out := make([]byte, 0, size)
	for _, m := range msgs {
		out = binary.BigEndian.AppendUint32(out, uint32(len(m)))
		out = append(out, m...)
	}
	p.release(arenas)
	return out, nil
}

// SplitEncoded returns the messages of an Encode result, as slices of it;
// an error wrapping ErrInvalid when it is not one.
func SplitEncoded(enc []byte) ([][]byte, error) {
	var msgs [][]byte
	for rest := enc; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: encoded batches: %d trailing bytes", ErrInvalid, len(rest))
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if n == 0 || uint64(n) > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: encoded batches: message of %d bytes, %d left", ErrInvalid, n, len(rest))
		}
		msgs = append(msgs, rest[:n:n])
		rest = rest[n:]
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%w: encoded batches: none", ErrInvalid)
	}
	return msgs, nil
}

// PublishEncodedWhile sends the messages of Encode results as Publish
// sends its own (grouped into MPUBs, retried while nsqd fails), asking
// valid first as PublishWhile does. A message over the size limit nsqd
// has now is refused like any other (ErrRejected).
func (p *Publisher) PublishEncodedWhile(ctx context.Context, encoded [][]byte, valid func() bool) error {
	var msgs [][]byte
	for _, enc := range encoded {
		m, err := SplitEncoded(enc)
		if err != nil {
			return err
		}
		msgs = append(msgs, m...)
	}
	select {
	case <-p.stop:
		return ErrStopped
	default:
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("push: publish %d encoded batches: %w", len(msgs), err)
	}
	if valid != nil && !valid() {
		return ErrWithheld
	}
	return p.send(ctx, group(msgs, p.cfg.MaxBodyBytes))
}

// parallelMinPushes is the input size from which encode splits the work
// over GOMAXPROCS goroutines; below it one goroutine is about as fast.
const parallelMinPushes = 8 << 10

// encode validates pushes and encodes them into batch messages that respect
// MaxPushesPerBatch and MaxMessageBytes, in order. Large inputs are split
// into chunks encoded in parallel (a chunk is a whole number of full
// batches, so only its last batch may be short). The messages live in the
// returned arenas, one per chunk, for release.
func (p *Publisher) encode(pushes []Push) (msgs [][]byte, arenas [][]byte, err error) {
	workers := 1
	if len(pushes) >= parallelMinPushes {
		workers = min(runtime.GOMAXPROCS(0), len(pushes)/(parallelMinPushes/2))
	}
	if workers <= 1 {
		msgs, arena, err := p.encodeChunk(pushes, 0)
		return msgs, [][]byte{arena}, err
	}
	maxPushes := p.cfg.MaxPushesPerBatch
	size := (len(pushes) + workers - 1) / workers
	size = (size + maxPushes - 1) / maxPushes * maxPushes
	type result struct {
		msgs  [][]byte
		arena []byte
		err   error
	}
	results := make([]result, (len(pushes)+size-1)/size)
	var wg sync.WaitGroup
	for i := range results {
		lo := i * size
		hi := min(lo+size, len(pushes))
		wg.Go(func() {
			r := &results[i]
			r.msgs, r.arena, r.err = p.encodeChunk(pushes[lo:hi], lo)
		})
	}
	wg.Wait()
	for _, r := range results {
		if r.err != nil {
			return nil, nil, r.err // the first chunk's error names the lowest push
		}
		msgs = append(msgs, r.msgs...)
		arenas = append(arenas, r.arena)
	}
	return msgs, arenas, nil
}

// encodeChunk is encode for one run of pushes, numbered from offset in
// error messages. All its messages share one buffer, returned as arena.
func (p *Publisher) encodeChunk(pushes []Push, offset int) (msgs [][]byte, arena []byte, err error) {
	maxBytes, maxPushes := p.cfg.MaxMessageBytes, p.cfg.MaxPushesPerBatch
	size := (len(pushes)/maxPushes + 1) * batchEnvelopeLen
	for i := range pushes {
		if err := pushes[i].validateForWire(); err != nil {
			return nil, nil, fmt.Errorf("push: publish: push %d: %w", offset+i, err)
		}
		size += pushLen(&pushes[i])
	}
	var e encoder
	buf := p.arena(size)
	var bounds []int // start of each message, then the end of the last
	start, n := 0, 0
	open := func() {
		start, n = len(buf), 0
		bounds = append(bounds, start)
		buf = e.batchHead(buf, newBatchID(), time.Now())
	}
	open()
	for i := range pushes {
		if n == maxPushes {
			buf = batchTail(buf)
			open()
		}
		mark := len(buf)
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = e.push(buf, &pushes[i])
		if len(buf)-start+batchTailLen <= maxBytes {
			n++
			continue
		}
		if n > 0 { // close the batch before this push and retry in a new one
			buf = batchTail(buf[:mark])
			open()
			buf = e.push(buf, &pushes[i])
		}
		if size := len(buf) - start + batchTailLen; size > maxBytes {
			return nil, nil, fmt.Errorf("push: publish: push %d (%s, user %d, %d items) needs %d bytes in a batch, limit %d: %w",
				offset+i, pushes[i].ID, pushes[i].UserID, len(pushes[i].Items), size, maxBytes, ErrTooLarge)
		}
		n = 1
	}
	buf = batchTail(buf)
	bounds = append(bounds, len(buf))
	msgs = make([][]byte, len(bounds)-1)
	for i := range msgs {
		msgs[i] = buf[bounds[i]:bounds[i+1]:bounds[i+1]]
	}
	return msgs, buf, nil
}

// arena returns an empty buffer of at least size bytes, reusing one a
// finished Publish gave back when it can.
func (p *Publisher) arena(size int) []byte {
	if b, ok := p.arenas.Get().(*[]byte); ok && cap(*b) >= size {
		return (*b)[:0]
	}
	return make([]byte, 0, size)
}

// release gives encode buffers back for reuse. Only call it once go-nsq is
// done with every message in them: after nsqd accepted them all.
func (p *Publisher) release(arenas [][]byte) {
	for _, a := range arenas {
		a = a[:0]
		p.arenas.Put(&a)
	}
}

// group packs messages, in order, into MPUB groups whose body (a 4-byte
// count, then each message with a 4-byte size) stays within maxBody.
func group(msgs [][]byte, maxBody int) [][][]byte {
	var groups [][][]byte
	first, body := 0, mpubOverhead
	for i, m := range msgs {
		size := mpubOverhead + len(m)
		if i > first && body+size > maxBody {
			groups = append(groups, msgs[first:i:i])
			first, body = i, mpubOverhead
		}
		body += size
	}
	return append(groups, msgs[first:])
}

// newBatchID returns 16 random bytes in hex.
func newBatchID() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// send MPUBs every group and retries those nsqd did not accept until all
// are accepted, ctx is done or the Publisher stops.
func (p *Publisher) send(ctx context.Context, groups [][][]byte) error {
	pending := groups
	attempt := 0
	for {
		failed, err := p.sendOnce(ctx, pending)
		if err == nil {
			if attempt > 0 {
				p.log.Info("nsqd accepted the batches after retries", "batches", countMessages(groups), "attempts", attempt+1)
			}
			return nil
		}
		switch {
		case errors.Is(err, ErrStopped):
			return err
		case errors.Is(err, ErrRejected):
			return fmt.Errorf("push: publish to nsqd %s topic %s: %w", p.cfg.NSQDAddr, p.cfg.Topic, err)
		case ctx.Err() != nil:
			return p.gaveUp(ctx, failed, groups, err)
		}
		if len(failed) < len(pending) {
			attempt = 0 // progress: start the backoff over
		}
		attempt++
		pause := p.backoff(attempt)
		p.log.Warn("nsqd did not accept batches, retrying", "error", err,
			"batches", countMessages(failed), "attempt", attempt, "retry_in", pause)
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return p.gaveUp(ctx, failed, groups, err)
		case <-p.stop:
			timer.Stop()
			return ErrStopped
		case <-timer.C:
		}
		pending = failed
	}
}

// gaveUp is the error Publish returns when ctx ends before nsqd accepted
// everything.
func (p *Publisher) gaveUp(ctx context.Context, failed, groups [][][]byte, last error) error {
	return fmt.Errorf("push: publish to nsqd %s topic %s: %d of %d batches not accepted (last error: %v): %w",
		p.cfg.NSQDAddr, p.cfg.Topic, countMessages(failed), countMessages(groups), last, ctx.Err())
}

// sendOnce pipelines one MPUB per group and waits for nsqd's answers. It
// returns the groups not accepted (in order) and an error describing the
// first failure; nil means every group was accepted.
func (p *Publisher) sendOnce(ctx context.Context, groups [][][]byte) ([][][]byte, error) {
	// Buffered for every transaction, so go-nsq never blocks on it even if
	// this call stops waiting.
	done := make(chan *nsq.ProducerTransaction, len(groups))
	ok := make([]bool, len(groups))
	p.enqueue.Lock()
	prod, err := p.currentProducer()
	if err != nil {
		p.enqueue.Unlock()
		return nil, err
	}
	var firstErr error
	sent := 0
	for i, g := range groups {
		if err := prod.MultiPublishAsync(p.cfg.Topic, g, done, i); err != nil {
			// Not connected (or discarded by a concurrent call): the
			// remaining groups would fail the same way.
			firstErr = fmt.Errorf("connect: %w", err)
			break
		}
		sent++
	}
	p.enqueue.Unlock()
	bound := time.NewTimer(p.cfg.AttemptTimeout)
	defer bound.Stop()
	for range sent {
		select {
		case t := <-done:
			i := t.Args[0].(int)
			if t.Error == nil {
				ok[i] = true
				continue
			}
			var perr nsq.ErrProtocol
			if errors.As(t.Error, &perr) && permanent(perr.Reason) {
				p.discard(prod) // nsqd closes the connection after such an error
				return nil, fmt.Errorf("%w: %s", ErrRejected, perr.Reason)
			}
			if firstErr == nil {
				firstErr = t.Error
			}
		case <-ctx.Done():
			return unaccepted(groups, ok), ctx.Err()
		case <-p.stop:
			return nil, ErrStopped
		case <-bound.C:
			// nsqd holds the connection but does not answer: a fresh one
			// carries the retry.
			p.discard(prod)
			return unaccepted(groups, ok), fmt.Errorf("nsqd did not answer within %s", p.cfg.AttemptTimeout)
		}
	}
	if firstErr != nil {
		p.discard(prod)
	}
	failed := unaccepted(groups, ok)
	if len(failed) == 0 {
		return nil, nil
	}
	return failed, firstErr
}

// unaccepted lists the groups whose ok flag is false, in order.
func unaccepted(groups [][][]byte, ok []bool) [][][]byte {
	var out [][][]byte
	for i, g := range groups {
		if !ok[i] {
			out = append(out, g)
		}
	}
	return out
}

// permanent reports whether an nsqd error reply means the same MPUB will
// never be accepted.
func permanent(reason string) bool {
	for _, code := range []string{"E_BAD_MESSAGE", "E_BAD_BODY", "E_BAD_TOPIC"} {
		if strings.HasPrefix(reason, code) {
			return true
		}
	}
	return false
}

// backoff is the pause before retry number attempt (1-based): RetryMin
// doubled attempt-1 times, capped at RetryMax, then jittered to between
// half and all of that.
func (p *Publisher) backoff(attempt int) time.Duration {
	d := p.cfg.RetryMin
	for i := 1; i < attempt && d < p.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, p.cfg.RetryMax)
	half := d / 2
	return half + rand.N(d-half+1)
}

// countMessages counts the batches in groups.
func countMessages(groups [][][]byte) int {
	n := 0
	for _, g := range groups {
		n += len(g)
	}
	return n
}

// Stop stops the Publisher: a running Publish returns ErrStopped and later
// ones fail with it; the connection to nsqd is closed. It is idempotent and
// safe to call concurrently.
func (p *Publisher) Stop() {
	p.stopOnce.Do(func() {
		close(p.stop)
		p.mu.Lock()
		p.stopped = true
		prod := p.producer
		p.producer = nil
		p.mu.Unlock()
		if prod != nil {
			prod.Stop()
		}
	})
}

// Unsendable reports whether err, from Publish, means the same pushes will
// never be accepted however often they are sent: a push too large for a
// message (ErrTooLarge), an invalid push (ErrInvalid), or nsqd refusing the
// message itself (ErrRejected: E_BAD_MESSAGE, E_BAD_BODY, E_BAD_TOPIC). A
// batch of several pushes that fails so may still hold pushes that pass on
// their own: callers split it. Every other error (nsqd down, refused
// connections, timeouts, ctx, ErrStopped) is worth retrying.
func Unsendable(err error) bool {
	return errors.Is(err, ErrTooLarge) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrRejected)
}
