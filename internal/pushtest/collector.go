// Package pushtest collects every push that reaches an NSQ topic, repeats
// included, so tests and the bench can check delivery invariants (R1-R5)
// against what really crossed nsqd.
package pushtest

import (
	"fmt"
	"io"
	"log"
	"sort"
	"sync"
	"time"

	"github.com/nsqio/go-nsq"

	"couponpush/push"
)

// Received is one push as it arrived.
type Received struct {
	push.Push
	At time.Time // local arrival time
}

// Consume subscribes channel of topic on the nsqd at tcpAddr and hands
// handle every message, decoded, with its arrival time (or the decode
// error), one message at a time. stop disconnects and waits.
func Consume(tcpAddr, topic, channel string, handle func(b push.Batch, at time.Time, err error)) (stop func(), err error) {
	return ConsumeRaw(tcpAddr, topic, channel, func(body []byte, at time.Time) {
		b, err := push.DecodeBatch(body)
		handle(b, at, err)
	})
}

// ConsumeRaw is Consume without the decoding: handle gets each message's
// body as it came (a buffer of its own, which handle may keep) and its
// arrival time, so a consumer that shares the CPU with what it measures
// can decode later.
func ConsumeRaw(tcpAddr, topic, channel string, handle func(body []byte, at time.Time)) (stop func(), err error) {
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 1000
	// nsqd buffers what it sends a consumer and flushes every 250 ms by
	// default; lateness measured here would include that wait.
	cfg.OutputBufferSize = -1
	c, err := nsq.NewConsumer(topic, channel, cfg)
	if err != nil {
		return nil, fmt.Errorf("pushtest consumer: %w", err)
	}
	c.SetLogger(log.New(io.Discard, "", 0), nsq.LogLevelError)
	c.AddHandler(nsq.HandlerFunc(func(m *nsq.Message) error {
		handle(m.Body, time.Now())
		return nil
	}))
	if err := c.ConnectToNSQD(tcpAddr); err != nil {
		return nil, fmt.Errorf("pushtest consumer connect %s: %w", tcpAddr, err)
	}
	return func() {
		c.Stop()
		<-c.StopChan
	}, nil
}

// Collector subscribes to a topic and keeps every push it receives.
type Collector struct {
	stop func()
	mu   sync.Mutex
	got  []Received // every delivery, in arrival order
	bad  int
}

// NewCollector starts consuming topic from the nsqd at tcpAddr.
func NewCollector(tcpAddr, topic string) (*Collector, error) {
	col := &Collector{}
	stop, err := Consume(tcpAddr, topic, "collector", func(b push.Batch, at time.Time, err error) {
		col.mu.Lock()
		defer col.mu.Unlock()
		if err != nil {
			col.bad++
			return
		}
		for _, p := range b.Pushes {
			col.got = append(col.got, Received{Push: p, At: at})
		}
	})
	if err != nil {
		return nil, err
	}
	col.stop = stop
	return col, nil
}

// Stop disconnects and waits for the consumer to end.
func (c *Collector) Stop() { c.stop() }

// All returns a copy of every delivery so far.
func (c *Collector) All() []Received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Received(nil), c.got...)
}

// Malformed counts messages that did not decode.
func (c *Collector) Malformed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bad
}

// Pair is a (user, template) reminder.
type Pair struct{ UserID, TemplateID int64 }

// Report summarises deliveries per reminder.
type Report struct {
	Deliveries int               // pushes received, repeats included
	Reminders  map[Pair][]string // push ids that carried each reminder, in arrival order
	Items      map[Pair]push.Item
	Repeats    int // deliveries whose push id arrived before
	// IDConflicts lists reminders carried by more than one distinct push id:
	// a repeat under a new id would defeat the message center's dedup (R5).
	IDConflicts []Pair
}

// Summarise builds a Report of deliveries.
func Summarise(got []Received) Report {
	r := Report{Deliveries: len(got), Reminders: map[Pair][]string{}, Items: map[Pair]push.Item{}}
	seen := map[string]bool{}
	for _, g := range got {
		if seen[g.ID] {
			r.Repeats++
		}
		seen[g.ID] = true
		for _, it := range g.Items {
			k := Pair{g.UserID, it.TemplateID}
			r.Reminders[k] = append(r.Reminders[k], g.ID)
			r.Items[k] = it
		}
	}
	for k, ids := range r.Reminders {
		for _, id := range ids[1:] {
			if id != ids[0] {
				r.IDConflicts = append(r.IDConflicts, k)
				break
			}
		}
	}
	sort.Slice(r.IDConflicts, func(i, j int) bool {
		a, b := r.IDConflicts[i], r.IDConflicts[j]
		return a.UserID < b.UserID || a.UserID == b.UserID && a.TemplateID < b.TemplateID
	})
	return r
}

// Unique counts distinct reminders delivered.
func (r Report) Unique() int { return len(r.Reminders) }
