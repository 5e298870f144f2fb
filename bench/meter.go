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

// meter is the bench's consumer. It shares the CPU with what it measures,
// so on arrival it only keeps each message as it came with its arrival
// time; wait decodes them (after the drain, in the burst) and looks for
// repeated ids. What it keeps decoded is what the figures need (each
// push's lateness and user, a 16-byte key per push id), so a million
// pushes cost it a few hundred megabytes of messages for the seconds of
// the drain and tens after, not the gigabyte pushtest.Collector would hold.
type meter struct {
	stop func()

	mu     sync.Mutex
	bodies [][]byte // arrived, not decoded yet
	ats    []time.Time

	// decoded, in arrival order (only wait touches them)
	ids   [][16]byte
	late  []time.Duration
	users []int64
	bad   int
}

func newMeter(tcpAddr, topic string, capacity int) (*meter, error) {
	m := &meter{ids: make([][16]byte, 0, capacity), late: make([]time.Duration, 0, capacity), users: make([]int64, 0, capacity)}
	stop, err := pushtest.ConsumeRaw(tcpAddr, topic, "bench", func(body []byte, at time.Time) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.bodies = append(m.bodies, body)
		m.ats = append(m.ats, at)
	})
	if err != nil {
		return nil, err
	}
	m.stop = stop
	return m, nil
}

// wait decodes what arrives until k pushes have, checks that no push id
// came twice, and returns their lateness, sorted.
func (m *meter) wait(k int) (lateness, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		m.decode()
		if m.bad > 0 {
			return nil, fmt.Errorf("consumer saw %d malformed messages or ids", m.bad)
		}
		if len(m.late) >= k {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("consumer saw %d of %d pushes", len(m.late), k)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ids := append([][16]byte(nil), m.ids...)
	l := append(lateness(nil), m.late...)
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

// decode decodes the messages that arrived since it last ran.
func (m *meter) decode() {
	m.mu.Lock()
	bodies, ats := m.bodies, m.ats
	m.bodies, m.ats = nil, nil
	m.mu.Unlock()
	for i, body := range bodies {
		b, err := push.DecodeBatch(body)
		if err != nil {
			m.bad++
			continue
		}
		for _, p := range b.Pushes {
			var k [16]byte
			if _, err := hex.Decode(k[:], []byte(p.ID)); err != nil {
				m.bad++
				continue
			}
			m.ids = append(m.ids, k)
			m.late = append(m.late, ats[i].Sub(p.DueAt))
			m.users = append(m.users, p.UserID)
		}
	}
}

// arrivals returns each push's user and lateness, in arrival order, of
// the pushes wait decoded.
func (m *meter) arrivals() ([]int64, []time.Duration) {
	return m.users, m.late
}
