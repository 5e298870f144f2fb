package bench

import (
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"

	"couponpush/internal/pushtest"
	"couponpush/push"
)

// meter is the bench's consumer: it keeps only what the figures need (each
// new push's lateness and a 16-byte key per push id), so a million pushes
// cost it tens of megabytes, not the hundreds pushtest.Collector would hold
// (its garbage collection would slow the workers sharing this process).
type meter struct {
	stop func()

	mu      sync.Mutex
	seen    map[[16]byte]struct{}
	late    []time.Duration
	repeats int
	bad     int
}

func newMeter(tcpAddr, topic string, capacity int) (*meter, error) {
	m := &meter{seen: make(map[[16]byte]struct{}, capacity), late: make([]time.Duration, 0, capacity)}
	stop, err := pushtest.Consume(tcpAddr, topic, "bench", func(b push.Batch, at time.Time, err error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if err != nil {
			m.bad++
			return
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
			m.late = append(m.late, at.Sub(p.DueAt))
		}
	})
	if err != nil {
		return nil, err
	}
	m.stop = stop
	return m, nil
}

// wait waits for k distinct pushes and returns their lateness, sorted.
func (m *meter) wait(k int) (lateness, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		m.mu.Lock()
		n, bad, repeats := len(m.late), m.bad, m.repeats
		m.mu.Unlock()
		if bad > 0 {
			return nil, fmt.Errorf("consumer saw %d malformed messages or ids", bad)
		}
		if repeats > 0 {
			// Nothing crashes in the bench: a repeat breaks exactly-once (R3).
			return nil, fmt.Errorf("consumer saw %d repeated pushes", repeats)
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
