package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// Timings of registrations; variables so tests can shorten them.
var (
	// deregisterTimeout bounds the deregistration Stop makes.
	deregisterTimeout = 5 * time.Second
	// minDeregisterAfter is the least time a critical service stays before
	// Consul reaps it (the reaper itself runs about every 30s).
	minDeregisterAfter = time.Minute
)

// DefaultTTL is the TTL of a service's health check when Service.TTL is 0.
const DefaultTTL = 10 * time.Second

// Health statuses a Worker can have.
const (
	StatusPassing  = api.HealthPassing  // "passing"
	StatusWarning  = api.HealthWarning  // "warning"
	StatusCritical = api.HealthCritical // "critical"
)

// Service describes the worker process registered in Consul.
type Service struct {
	// ID is unique among the service's instances (the worker id). Required.
	ID string
	// Name is the service name shared by all workers. Required.
	Name string
	// Address and Port are where the worker's HTTP server listens; an empty
	// Address means the agent's node address.
	Address string
	Port    int
	// TTL is how long the health check stays passing without an update;
	// zero means DefaultTTL. The check is updated every TTL/3.
	TTL time.Duration
	// Meta is free-form metadata shown by Workers (roles, version).
	Meta map[string]string
}

// Registration keeps a Service registered in the local Consul agent with a
// TTL health check that passes while healthy() returns nil. If healthy
// returns an error the check turns critical with that error as its output;
// if the process stalls, updates stop and the TTL turns it critical on its
// own. If the agent forgets the service (a restart), it is registered again.
type Registration struct {
	c       *Client
	svc     Service
	healthy func() error
	checkID string
	log     *slog.Logger

	mu      sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{}

	// Owned by the run goroutine (and by Start before it begins).
	registered bool
	lastErr    string // output of the last failing healthy(), "" if passing
	out        outage
}

// Register prepares the registration of svc; nothing is sent until Start.
// healthy is called every TTL/3 and must return quickly (read a heartbeat,
// do not do I/O); nil means always healthy.
func (c *Client) Register(svc Service, healthy func() error) *Registration {
	if svc.TTL <= 0 {
		svc.TTL = DefaultTTL
	}
	svc.Meta = maps.Clone(svc.Meta)
	if healthy == nil {
		healthy = func() error { return nil }
	}
	interval := svc.TTL / 3
	return &Registration{
		c:       c,
		svc:     svc,
		healthy: healthy,
		checkID: "service:" + svc.ID,
		log:     c.logger.With(slog.String("service", svc.Name), slog.String("service_id", svc.ID)),
		out:     outage{min: min(retryMin, interval), max: min(retryMax, interval)},
	}
}

// Start makes the first registration attempt and then keeps the check
// updated in a goroutine until ctx ends or Stop. Consul being down is not an
// error: it is logged and retried in the background. Start fails for a
// Service without ID or Name, or if called twice.
func (r *Registration) Start(ctx context.Context) error {
	if r.svc.ID == "" || r.svc.Name == "" {
		return errors.New("consul registration: service needs an ID and a Name")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.stopped {
		return errors.New("consul registration: already started")
	}
	r.started = true
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})

	first, cancel := context.WithTimeout(ctx, firstReadTimeout)
	r.beat(first)
	cancel()
	go r.run(ctx)
	return nil
}

// Stop ends the update goroutine and deregisters the service, waiting at
// most a few seconds for Consul. It is idempotent and safe without Start.
func (r *Registration) Stop() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	started, cancel, done := r.started, r.cancel, r.done
	r.mu.Unlock()
	if !started {
		return
	}
	cancel()
	<-done

	ctx, cancelTimeout := context.WithTimeout(context.Background(), deregisterTimeout)
	defer cancelTimeout()
	if err := r.c.api.Agent().ServiceDeregisterOpts(r.svc.ID, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		r.log.Warn("consul deregistration failed; the agent reaps the service once its check has been critical long enough", slog.Any("err", err))
		return
	}
	r.log.Info("deregistered from consul")
}

// run updates the check every TTL/3 (sooner while retrying) until ctx ends.
func (r *Registration) run(ctx context.Context) {
	defer close(r.done)
	interval := r.svc.TTL / 3
	for {
		wait := interval
		if r.out.down() {
			wait = r.out.delay()
		}
		if !sleep(ctx, wait) {
			return
		}
		r.beat(ctx)
	}
}

// beat checks health and tells Consul, registering first if needed.
func (r *Registration) beat(ctx context.Context) {
	status, output := r.check()
	var err error
	if r.registered {
		q := (&api.QueryOptions{}).WithContext(ctx)
		err = r.c.api.Agent().UpdateTTLOpts(r.checkID, output, status, q)
		var se api.StatusError
		if errors.As(err, &se) {
			// The agent answered but does not know the check: it was
			// restarted or the service was removed. Register again.
			r.log.Info("consul agent forgot the registration; registering again", slog.Any("err", err))
			r.registered = false
		}
	}
	if !r.registered {
		err = r.register(ctx, status, output)
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return
		}
		r.out.fail(r.log, "consul registration failing; retrying", err)
		return
	}
	r.out.ok(r.log, "consul registration healthy again")
}

// check calls healthy and logs transitions between passing and critical.
func (r *Registration) check() (status, output string) {
	err := r.healthy()
	if err == nil {
		if r.lastErr != "" {
			r.log.Info("health check passing again")
			r.lastErr = ""
		}
		return StatusPassing, "ok"
	}
	output = err.Error()
	if r.lastErr == "" {
		r.log.Warn("health check failing; reporting critical to consul", slog.Any("err", err))
	}
	r.lastErr = output
	return StatusCritical, output
}

// register (re-)registers the service with its check in the given state.
func (r *Registration) register(ctx context.Context, status, output string) error {
	reg := &api.AgentServiceRegistration{
		ID:      r.svc.ID,
		Name:    r.svc.Name,
		Address: r.svc.Address,
		Port:    r.svc.Port,
		Meta:    r.svc.Meta,
		Check: &api.AgentServiceCheck{
			CheckID:                        r.checkID,
			Name:                           r.svc.Name + " health",
			TTL:                            r.svc.TTL.String(),
			Status:                         status,
			Notes:                          output,
			DeregisterCriticalServiceAfter: max(minDeregisterAfter, 6*r.svc.TTL).String(),
		},
	}
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := r.c.api.Agent().ServiceRegisterOpts(reg, opts); err != nil {
		return fmt.Errorf("register service %s in consul: %w", r.svc.ID, err)
	}
	// The registration's Status sets the state but not the output: push the
	// output too, so a critical check says why from the start.
	if status != StatusPassing {
		q := (&api.QueryOptions{}).WithContext(ctx)
		if err := r.c.api.Agent().UpdateTTLOpts(r.checkID, output, status, q); err != nil {
			return fmt.Errorf("update check of %s in consul: %w", r.svc.ID, err)
		}
	}
	r.registered = true
	r.log.Info("registered in consul", slog.String("status", status))
	return nil
}

// Worker is one registered worker as Consul sees it.
type Worker struct {
	// ID is the service instance id (the worker id).
	ID string
	// Address and Port are where the worker listens.
	Address string
	Port    int
	// Status is passing, warning or critical: the worst of the service's
	// and its node's checks (maintenance mode counts as critical).
	Status string
	// Meta is the metadata the worker registered with.
	Meta map[string]string
}

// Workers lists every instance of serviceName with its health, sorted by
// ID. An unknown service gives an empty list.
func (c *Client) Workers(ctx context.Context, serviceName string) ([]Worker, error) {
	entries, _, err := c.api.Health().Service(serviceName, "", false, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("list %s workers from consul: %w", serviceName, err)
	}
	out := make([]Worker, 0, len(entries))
	for _, e := range entries {
		if e.Service == nil {
			continue
		}
		w := Worker{
			ID:      e.Service.ID,
			Address: e.Service.Address,
			Port:    e.Service.Port,
			Status:  e.Checks.AggregatedStatus(),
			Meta:    e.Service.Meta,
		}
		if w.Address == "" && e.Node != nil {
			w.Address = e.Node.Address
		}
		if w.Status != StatusPassing && w.Status != StatusWarning {
			w.Status = StatusCritical // critical, maintenance or unknown
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b Worker) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
