package worker

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestTemplateLabelsAreBounded gives more live templates than the cap a
// label, and checks that the extra ones, unknown ones and ones past their
// grab end get "other", and that a template loses its label (its series
// dropped) once its grab end plus the grace has passed.
func TestTemplateLabelsAreBounded(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var (
		mu      sync.Mutex
		added   = map[string]bool{}
		dropped []string
		lookups int
	)
	l := newTemplateLabels(func(_ context.Context, id int64) (templateInfo, error) {
		lookups++
		switch {
		case id >= 1000:
			return templateInfo{}, errors.New("no such template")
		case id >= 500: // ended long ago
			return templateInfo{grabEnd: now.Add(-time.Hour)}, nil
		}
		return templateInfo{grabStart: now, grabEnd: now.Add(time.Duration(id) * time.Minute)}, nil
	}, func(label string, _ templateInfo) {
		mu.Lock()
		added[label] = true
		mu.Unlock()
	}, func(label string) { dropped = append(dropped, label) })
	l.now = func() time.Time { return now }

	for id := int64(1); id <= maxTemplateLabels; id++ {
		if got := l.label(id); got != strconv.FormatInt(id, 10) {
			t.Fatalf("label(%d) = %q, want its id", id, got)
		}
	}
	for _, tc := range []struct {
		name string
		id   int64
		want string
	}{
		{"a labelled template again", 7, "7"},
		{"one beyond the cap", maxTemplateLabels + 1, otherTemplate},
		{"an unknown template", 1001, otherTemplate},
		{"an ended template", 501, otherTemplate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := l.label(tc.id); got != tc.want {
				t.Fatalf("label(%d) = %q, want %q", tc.id, got, tc.want)
			}
		})
	}
	if len(added) != maxTemplateLabels {
		t.Fatalf("%d templates added, want %d", len(added), maxTemplateLabels)
	}
	n := lookups
	l.label(maxTemplateLabels + 1) // still "other", and not looked up again so soon
	if lookups != n {
		t.Fatalf("a refused template was looked up again at once")
	}

	// Template 1's grab end (now+1m) plus the grace passes: it is dropped,
	// and the slot goes to the next template that asks.
	now = now.Add(time.Minute + templateGrace)
	l.prune()
	if len(dropped) != 1 || dropped[0] != "1" {
		t.Fatalf("dropped %q, want [1]", dropped)
	}
	now = now.Add(otherRecheck)
	if got := l.label(maxTemplateLabels + 1); got != strconv.Itoa(maxTemplateLabels+1) {
		t.Fatalf("label(%d) after a slot freed = %q", maxTemplateLabels+1, got)
	}
	if got := l.label(1); got != otherTemplate {
		t.Fatalf("label(1) after its grace = %q, want other", got)
	}
}
