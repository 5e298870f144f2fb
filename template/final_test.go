package template

import (
	"testing"
	"time"
)

func TestFinalStarts(t *testing.T) {
	t.Parallel()
	a := Template{ID: 1, GrabStart: t0}
	moved := Template{ID: 1, GrabStart: t0.Add(time.Minute)}
	tests := []struct {
		name  string
		add   []Template
		ask   Template
		known bool
	}{
		{name: "nothing added", ask: a, known: false},
		{name: "added", add: []Template{a}, ask: a, known: true},
		{name: "another grab start of the same template", add: []Template{a}, ask: moved, known: false},
		{name: "another template", add: []Template{a}, ask: Template{ID: 2, GrabStart: t0}, known: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f FinalStarts
			for _, x := range tt.add {
				f.Add(x)
			}
			if got := f.Known(tt.ask); got != tt.known {
				t.Fatalf("Known(%+v) = %v, want %v", tt.ask, got, tt.known)
			}
			g, ok := f.Get(tt.ask.ID)
			if want := len(tt.add) > 0 && tt.add[0].ID == tt.ask.ID; ok != want || (ok && !g.Equal(tt.add[0].GrabStart)) {
				t.Fatalf("Get(%d) = %v, %v", tt.ask.ID, g, ok)
			}
		})
	}

	t.Run("bounded", func(t *testing.T) {
		var f FinalStarts
		for id := range int64(MaxFinalStarts) {
			f.Add(Template{ID: id + 1, GrabStart: t0})
		}
		if !f.Known(Template{ID: 1, GrabStart: t0}) {
			t.Fatal("forgot a template before the bound")
		}
		f.Add(Template{ID: MaxFinalStarts + 1, GrabStart: t0}) // past the bound: start over
		if f.Known(Template{ID: 1, GrabStart: t0}) || !f.Known(Template{ID: MaxFinalStarts + 1, GrabStart: t0}) {
			t.Fatal("past the bound, want only the newest template remembered")
		}
	})
}
