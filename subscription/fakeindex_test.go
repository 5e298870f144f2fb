package subscription

import (
	"context"
	"errors"
	"sync"
	"time"

	"couponpush/queue"
)

type pair struct{ user, template int64 }

// indexed is what the fake index holds for one (user, template).
type indexed struct {
	version   int64
	pushAt    time.Time
	cancelled bool
}

type indexCall struct {
	op string // "add" or "cancel"
	e  queue.Entry
}

// fakeIndex keeps the Index contract in memory: writes at an equal or older
// version change nothing; Cancel of an in-flight reminder is ErrInFlight.
// It records every call and can be told to fail.
type fakeIndex struct {
	mu         sync.Mutex
	calls      []indexCall
	state      map[pair]indexed
	inFlight   map[pair]bool
	failAdd    error
	failCancel error
}

func newFakeIndex() *fakeIndex {
	return &fakeIndex{state: map[pair]indexed{}, inFlight: map[pair]bool{}}
}

var errIndexDown = errors.New("fake index: down")

func (f *fakeIndex) Add(_ context.Context, e queue.Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, indexCall{"add", e})
	if f.failAdd != nil {
		return f.failAdd
	}
	k := pair{e.UserID, e.TemplateID}
	if cur, ok := f.state[k]; ok && cur.version >= e.Version {
		return nil
	}
	f.state[k] = indexed{version: e.Version, pushAt: e.PushAt}
	return nil
}

func (f *fakeIndex) Cancel(_ context.Context, e queue.Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, indexCall{"cancel", e})
	if f.failCancel != nil {
		return f.failCancel
	}
	k := pair{e.UserID, e.TemplateID}
	if f.inFlight[k] {
		return queue.ErrInFlight
	}
	if cur, ok := f.state[k]; ok && cur.version >= e.Version {
		return nil
	}
	f.state[k] = indexed{version: e.Version, pushAt: e.PushAt, cancelled: true}
	return nil
}

// callsFor returns the calls made for one pair, in order.
func (f *fakeIndex) callsFor(user, template int64) []indexCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []indexCall
	for _, c := range f.calls {
		if c.e.UserID == user && c.e.TemplateID == template {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeIndex) get(user, template int64) (indexed, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.state[pair{user, template}]
	return st, ok
}

func (f *fakeIndex) setInFlight(user, template int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight[pair{user, template}] = true
}

func (f *fakeIndex) setFail(add, cancel error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAdd, f.failCancel = add, cancel
}

// Records reports what the fake holds, as queue.Router.Records does.
func (f *fakeIndex) Records(_ context.Context, entries []queue.Entry) ([]queue.RecordEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]queue.RecordEntry, len(entries))
	for i, e := range entries {
		k := pair{e.UserID, e.TemplateID}
		cur, ok := f.state[k]
		if !ok {
			continue
		}
		st := queue.StatePending
		switch {
		case f.inFlight[k]:
			st = queue.StateTaken
		case cur.cancelled:
			st = queue.StateCancelled
		}
		out[i] = queue.RecordEntry{TemplateID: e.TemplateID, PushAt: cur.pushAt, Version: cur.version, State: st}
	}
	return out, nil
}
