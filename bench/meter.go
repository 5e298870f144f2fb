package bench

import (
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"sort"
	"sync"
	"time"

	"github.com/nsqio/go-nsq"

	"couponpush/push"
)

// meter is the bench's consumer: it keeps only what the figures need (each
// new push's lateness and a 16-byte key per push id), so a million pushes
// cost it tens of megabytes, not the hundreds pushtest.Collector would hold
// (its garbage collection would slow the workers sharing this process).
type meter struct {
	c *nsq.Consumer

	mu      sync.Mutex
	seen    map[[16]byte]struct{}
	late    []time.Duration
	repeats int
	bad     int
}

func newMeter(tcpAddr, topic string, capacity int) (*meter, error) {
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 1000
	cfg.OutputBufferSize = -1 // see push.Consumer: no 250 ms flush wait
	c, err := nsq.NewConsumer(topic, "bench", cfg)
	if err != nil {
		return nil, fmt.Errorf("meter: %w", err)
	}
	c.SetLogger(log.New(io.Discard, "", 0), nsq.LogLevelError)
	m := &meter{c: c, seen: make(map[[16]byte]struct{}, capacity), late: make([]time.Duration, 0, capacity)}
	c.AddHandler(nsq.HandlerFunc(func(msg *nsq.Message) error {
		now := time.Now()
		b, err := push.DecodeBatch(msg.Body)
		m.mu.Lock()
		defer m.mu.Unlock()
		if err != nil {
			m.bad++
			return nil
		}
		for _, p := range b.Pushes {
			var k [16]byte
			if _, err := hex.Decode(k[:], []byte(p.ID)); err != nil {
				m.bad++
				continue
			}
			if _, dup := m.seen[k]; dup {
				m.repeats++
				continue
			}
			m.seen[k] = struct{}{}
			m.late = append(m.late, now.Sub(p.DueAt))
		}
		return nil
	}))
	if err := c.ConnectToNSQD(tcpAddr); err != nil {
		return nil, fmt.Errorf("meter connect %s: %w", tcpAddr, err)
	}
	return m, nil
}

func (m *meter) stop() {
	m.c.Stop()
	<-m.c.StopChan
}

// wait waits for k distinct pushes and returns their lateness, sorted.
func (m *meter) wait(k int) (lateness, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		m.mu.Lock()
		n, bad := len(m.late), m.bad
		m.mu.Unlock()
		if bad > 0 {
			return nil, fmt.Errorf("consumer saw %d malformed messages or ids", bad)
		}
		if n >= k {
			m.mu.Lock()
			l := append(lateness(nil), m.late...)
			m.mu.Unlock()
			sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
			return l, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("consumer saw %d of %d pushes", n, k)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
