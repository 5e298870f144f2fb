package push

import (
	"fmt"
	"testing"
)

func TestDedup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		capacity int
		ids      []string
		wantNew  []bool
	}{
		{"repeats dropped", 10, []string{"a", "b", "a", "c", "b"}, []bool{true, true, false, true, false}},
		{"oldest forgotten first", 2, []string{"a", "b", "c", "a", "c"}, []bool{true, true, true, true, false}},
		{"capacity one", 1, []string{"a", "a", "b", "a"}, []bool{true, false, true, true}},
		{"repeat does not refresh", 2, []string{"a", "b", "a", "c", "a"}, []bool{true, true, false, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newDedup(tt.capacity)
			for i, id := range tt.ids {
				if got := d.add(id); got != tt.wantNew[i] {
					t.Fatalf("add(%q) #%d = %v, want %v", id, i, got, tt.wantNew[i])
				}
				if d.len() > tt.capacity {
					t.Fatalf("remembers %d ids, capacity %d", d.len(), tt.capacity)
				}
			}
		})
	}
}

func TestDedupStaysBounded(t *testing.T) {
	t.Parallel()
	const capacity = 1000
	d := newDedup(capacity)
	for i := range 10 * capacity {
		if !d.add(fmt.Sprint(i)) {
			t.Fatalf("id %d reported as repeat", i)
		}
	}
	if d.len() != capacity || len(d.ring) != capacity {
		t.Fatalf("remembers %d ids in a ring of %d, want %d", d.len(), len(d.ring), capacity)
	}
	for i := 9 * capacity; i < 10*capacity; i++ {
		if d.add(fmt.Sprint(i)) {
			t.Fatalf("recent id %d forgotten", i)
		}
	}
}
