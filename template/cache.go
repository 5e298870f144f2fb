package template

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Cache defaults.
const (
	DefaultCacheTTL        = 2 * time.Second
	DefaultCacheMaxEntries = 10_000
	cacheLoadTimeout       = 10 * time.Second
)

// Source is what a Cache reads and writes through; *Store and *Redis are
// ones.
type Source interface {
	Create(ctx context.Context, d Draft) (Template, error)
	Get(ctx context.Context, id int64) (Template, error)
	Update(ctx context.Context, id int64, p Patch) (Template, error)
}

// CacheConfig configures a Cache. Zero values mean defaults.
type CacheConfig struct {
	// TTL is how long a loaded template is answered from memory; default
	// DefaultCacheTTL. It bounds how stale another process's change can be.
	TTL time.Duration
	// MaxEntries bounds the cache; the least recently used entry goes
	// first. Default DefaultCacheMaxEntries.
	MaxEntries int
	// Now is the clock for expiry; default time.Now.
	Now func() time.Time
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c CacheConfig) WithDefaults() CacheConfig {
	if c.TTL == 0 {
		c.TTL = DefaultCacheTTL
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultCacheMaxEntries
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every problem of c (defaults applied first), joined.
func (c CacheConfig) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if c.TTL < 0 {
		errs = append(errs, fmt.Errorf("template: cache TTL %v is negative", c.TTL))
	}
	if c.MaxEntries < 0 {
		errs = append(errs, fmt.Errorf("template: cache MaxEntries %d is negative", c.MaxEntries))
	}
	return errors.Join(errs...)
}

// Cache is a bounded, read-through, in-process cache of templates in front
// of a Source. Concurrent misses for one id share a single load. Errors
// are not cached. Update through the cache invalidates the entry at once;
// changes made elsewhere show within the TTL. Safe for concurrent use.
type Cache struct {
	src Source
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[int64]*list.Element // of *cacheEntry
	lru     *list.List              // front = most recently used
	calls   map[int64]*cacheCall
	epoch   uint64 // bumped by Invalidate; a load started before is not stored
}

type cacheEntry struct {
	t       Template
	expires time.Time
}

type cacheCall struct {
	done    chan struct{}
	t       Template
	err     error
	waiters int // callers sharing this load, for tests
}

// NewCache returns a cache over src, or the problems of its arguments.
func NewCache(src Source, cfg CacheConfig) (*Cache, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil {
		return nil, errors.New("template: cache needs a source")
	}
	return &Cache{
		src:     src,
		ttl:     cfg.TTL,
		max:     cfg.MaxEntries,
		now:     cfg.Now,
		entries: map[int64]*list.Element{},
		lru:     list.New(),
		calls:   map[int64]*cacheCall{},
	}, nil
}

// Get returns template id from memory if loaded within the TTL, else loads
// it once for all concurrent callers. ErrNotFound if there is none.
func (c *Cache) Get(ctx context.Context, id int64) (Template, error) {
	c.mu.Lock()
	if el, ok := c.entries[id]; ok {
		e := el.Value.(*cacheEntry)
		if c.now().Before(e.expires) {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			return e.t, nil
		}
	}
	call, ok := c.calls[id]
	if !ok {
		call = &cacheCall{done: make(chan struct{})}
		c.calls[id] = call
		go c.load(ctx, id, call, c.epoch)
	}
	call.waiters++
	c.mu.Unlock()

	select {
	case <-call.done:
		return call.t, call.err
	case <-ctx.Done():
		return Template{}, ctx.Err()
	}
}

// load runs one shared read. It does not inherit the first caller's
// cancellation: the other callers still want the answer.
func (c *Cache) load(ctx context.Context, id int64, call *cacheCall, epoch uint64) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cacheLoadTimeout)
	defer cancel()
	t, err := c.src.Get(lctx, id)

	c.mu.Lock()
	defer c.mu.Unlock()
	call.t, call.err = t, err
	close(call.done)
	if c.calls[id] == call {
		delete(c.calls, id)
	}
	if err != nil || c.epoch != epoch {
		return
	}
	c.store(t)
}

// store puts t in the cache; c.mu is held.
func (c *Cache) store(t Template) {
	e := &cacheEntry{t: t, expires: c.now().Add(c.ttl)}
	if el, ok := c.entries[t.ID]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.entries[t.ID] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.entries, old.Value.(*cacheEntry).t.ID)
	}
}

// Invalidate drops template id from the cache; a load already under way
// is not stored, so the next Get reads the source again.
func (c *Cache) Invalidate(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	if el, ok := c.entries[id]; ok {
		c.lru.Remove(el)
		delete(c.entries, id)
	}
	delete(c.calls, id)
}

// Len returns how many templates are cached, expired ones included.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Create creates a template through the source (see Store.Create).
func (c *Cache) Create(ctx context.Context, d Draft) (Template, error) {
	return c.src.Create(ctx, d)
}

// Update changes a template through the source (see Store.Update)
// and invalidates it in this cache, whatever the outcome.
func (c *Cache) Update(ctx context.Context, id int64, p Patch) (Template, error) {
	t, err := c.src.Update(ctx, id, p)
	c.Invalidate(id)
	return t, err
}
