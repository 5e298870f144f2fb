package template

import (
	"sync"
	"time"
)

// MaxFinalStarts bounds how many templates a FinalStarts remembers. When it
// is full it forgets them all; each is relearned the way it was learned
// first (one MySQL read or checked statement per template).
const MaxFinalStarts = 100_000

// FinalStarts remembers grab starts known to be final. A template's
// grab_start never changes once any subscription row refers to it
// (Store.Update refuses with ErrHasSubscribers), so a grab start read or
// confirmed after a subscription row was committed can be kept for good,
// without a TTL. The caller vouches for that when it calls Add. The zero
// value is ready to use; it is safe for concurrent use.
type FinalStarts struct {
	mu     sync.RWMutex
	starts map[int64]time.Time // template id → its final grab_start
}

// Get returns the final grab start of template id, if it is known.
func (f *FinalStarts) Get(id int64) (time.Time, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	g, ok := f.starts[id]
	return g, ok
}

// Known reports whether t's grab start is known to be final: Add was
// called with this template and this grab start.
func (f *FinalStarts) Known(t Template) bool {
	g, ok := f.Get(t.ID)
	return ok && g.Equal(t.GrabStart)
}

// Add records t's grab start as final. Call it only when a subscription
// row for t is committed and t.GrabStart was what MySQL held then.
func (f *FinalStarts) Add(t Template) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.starts == nil {
		f.starts = map[int64]time.Time{}
	}
	if len(f.starts) >= MaxFinalStarts {
		clear(f.starts)
	}
	f.starts[t.ID] = t.GrabStart
}
