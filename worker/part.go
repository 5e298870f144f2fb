package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// part is one long-running piece of a worker: an engine pool, a watcher,
// a listener, a job. Start may build what the part needs from what the
// parts before it started; Stop ends it, waiting for its goroutines.
type part interface {
	// Name says which part it is, in logs and errors.
	Name() string
	// Start starts the part; it returns once the part runs.
	Start(ctx context.Context) error
	// Stop stops the part and waits for it. It is idempotent, and safe
	// after a Start that failed.
	Stop()
}

// parts is the worker's parts in start order: each may use those before it,
// so they start in order and stop in reverse.
type parts struct {
	log  *slog.Logger
	list []part
	n    int // how many were started (their Start was called)
}

// start starts the parts in order. When one fails it is stopped, then those
// already started in reverse, and its error is returned.
func (ps *parts) start(ctx context.Context) error {
	for _, p := range ps.list {
		ps.n++
		if err := p.Start(ctx); err != nil {
			ps.stop()
			return fmt.Errorf("start %s: %w", p.Name(), err)
		}
		ps.log.Debug("part started", slog.String("part", p.Name()))
	}
	return nil
}

// stop stops the started parts in reverse order. It is idempotent.
func (ps *parts) stop() {
	for ; ps.n > 0; ps.n-- {
		p := ps.list[ps.n-1]
		p.Stop()
		ps.log.Debug("part stopped", slog.String("part", p.Name()))
	}
}

// funcPart is a part made of two funcs; Stop runs its func at most once.
// Either func may be nil.
type funcPart struct {
	name  string
	start func(context.Context) error
	stop  func()
	once  sync.Once
}

func newPart(name string, start func(context.Context) error, stop func()) *funcPart {
	return &funcPart{name: name, start: start, stop: stop}
}

func (p *funcPart) Name() string { return p.name }

func (p *funcPart) Start(ctx context.Context) error {
	if p.start == nil {
		return nil
	}
	return p.start(ctx)
}

func (p *funcPart) Stop() {
	p.once.Do(func() {
		if p.stop != nil {
			p.stop()
		}
	})
}
