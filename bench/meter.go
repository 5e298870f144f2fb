package bench

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"couponpush/internal/pushtest"
	"couponpush/push"
)

// meter is the bench's consumer: it keeps only what the figures need (each
// push's lateness and a 16-byte key per push id), so a million pushes cost
// it tens of megabytes, not the hundreds pushtest.Collector would hold (its
// garbage collection would slow the workers sharing this process). It
// shares the CPU with what it measures, so it appends while the drain runs
// and looks for repeated ids (sorting the keys) only once all have come.
type meter struct {
	stop func()

	mu   sync.Mutex
	ids  [][16]byte
	late []time.Duration
	bad  int
}

func newMeter(tcpAddr, topic string, capacity int) (*meter, error) {
	m := &meter{ids: make([][16]byte, 0, capacity), late: make([]time.Duration, 0, capacity)}
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
			m.ids = append(m.ids, k)
			m.late = append(m.late, at.Sub(p.DueAt))
		}
	})
	if err != nil {
		return nil, err
	}
	m.stop = stop
	return m, nil
}

// wait waits for k pushes, checks that no push id came twice, and returns
// their lateness, sorted.
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
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("consumer saw %d of %d pushes", n, k)
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.mu.Lock()
	ids := append([][16]byte(nil), m.ids...)
	l := append(lateness(nil), m.late...)
	m.mu.Unlock()
	slices.SortFunc(ids, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	repeats := 0
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			repeats++
		}
	}
	if repeats > 0 {
		// Nothing crashes in the bench: a repeat breaks exactly-once (R3).
		return nil, fmt.Errorf("consumer saw %d repeated pushes", repeats)
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l, nil
}
