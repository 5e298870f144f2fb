package worker

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// Bounds of the template label (METRICS-SPEC "per template").
const (
	// maxTemplateLabels is how many templates get a label of their own;
	// the rest share template="other".
	maxTemplateLabels = 64
	// otherTemplate is the label of every template beyond the cap, or not
	// live.
	otherTemplate = "other"
	// templateGrace keeps a template labelled this long after its grab
	// end, so its last pushes and counts stay visible for a while.
	templateGrace = 15 * time.Minute
	// otherRecheck is how long a template refused a label (over the cap,
	// not live, or not found) stays "other" before it is looked up again.
	otherRecheck = 30 * time.Second
	// labelLookupTimeout bounds the template lookup behind a new label.
	labelLookupTimeout = time.Second
)

// templateInfo is what the label set needs of a template.
type templateInfo struct {
	grabStart, grabEnd time.Time
}

// templateLabels gives templates their metric label: the id in decimal
// for up to maxTemplateLabels live templates (grab end not passed more than
// templateGrace ago), "other" for the rest, so a template label never
// takes more than maxTemplateLabels+1 values at once. A template whose
// grab end (plus grace) passed loses its label: drop is told, to delete
// its series. Safe for concurrent use.
type templateLabels struct {
	lookup func(ctx context.Context, id int64) (templateInfo, error)
	added  func(label string, t templateInfo) // a template got its label
	drop   func(label string)                 // a template lost its label
	now    func() time.Time

	mu    sync.Mutex
	live  map[int64]time.Time // labelled templates → until when
	other map[int64]time.Time // refused a label → until when
}

func newTemplateLabels(lookup func(context.Context, int64) (templateInfo, error), added func(string, templateInfo), drop func(string)) *templateLabels {
	return &templateLabels{lookup: lookup, added: added, drop: drop, now: time.Now,
		live: map[int64]time.Time{}, other: map[int64]time.Time{}}
}

// label is template id's label. A template not seen before is looked up
// (once; without the lock held).
func (l *templateLabels) label(id int64) string { return l.labelAt(id, l.now()) }

// labelAt is label as of now, for a caller that has the time at hand: the
// clock is read once per chunk rather than once per push (on this
// project's VMs a clock read cost a quarter of a burst's metrics).
func (l *templateLabels) labelAt(id int64, now time.Time) string {
	l.mu.Lock()
	if until, ok := l.live[id]; ok && now.Before(until) {
		l.mu.Unlock()
		return strconv.FormatInt(id, 10)
	}
	if until, ok := l.other[id]; ok && now.Before(until) {
		l.mu.Unlock()
		return otherTemplate
	}
	l.pruneLocked(now)
	full := len(l.live) >= maxTemplateLabels
	l.mu.Unlock()
	if full {
		return l.refuse(id, now)
	}

	ctx, cancel := context.WithTimeout(context.Background(), labelLookupTimeout)
	defer cancel()
	t, err := l.lookup(ctx, id)
	until := t.grabEnd.Add(templateGrace)
	if err != nil || !now.Before(until) {
		return l.refuse(id, now)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.live[id]; !ok {
		if len(l.live) >= maxTemplateLabels {
			return l.refuseLocked(id, now)
		}
		l.live[id] = until
		delete(l.other, id)
		l.added(strconv.FormatInt(id, 10), t)
	}
	return strconv.FormatInt(id, 10)
}

func (l *templateLabels) refuse(id int64, now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refuseLocked(id, now)
}

func (l *templateLabels) refuseLocked(id int64, now time.Time) string {
	if len(l.other) >= 4*maxTemplateLabels { // a flood of ids: start over rather than grow
		clear(l.other)
	}
	l.other[id] = now.Add(otherRecheck)
	return otherTemplate
}

// prune drops the labels of templates no longer live.
func (l *templateLabels) prune() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(l.now())
}

func (l *templateLabels) pruneLocked(now time.Time) {
	for id, until := range l.live {
		if !now.Before(until) {
			delete(l.live, id)
			l.drop(strconv.FormatInt(id, 10))
		}
	}
	for id, until := range l.other {
		if !now.Before(until) {
			delete(l.other, id)
		}
	}
}
