package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/hashicorp/consul/api"
)

// DefaultPrefix is the KV prefix used when New is given none.
const DefaultPrefix = "couponpush"

// DefaultAddr is the Consul agent address used when New is given none.
const DefaultAddr = "127.0.0.1:8500"

// Client talks to one Consul agent for one deployment (one KV prefix). It is
// safe for concurrent use; Close it when done to drop idle connections.
type Client struct {
	api       *api.Client
	transport *http.Transport
	prefix    string
	logger    *slog.Logger
}

// New returns a Client for the Consul agent at addr (host:port, optionally
// with an http:// or https:// scheme; "" means 127.0.0.1:8500) whose keys
// live under prefix ("" means "couponpush"; surrounding slashes are
// dropped). A nil logger discards logs. New does not contact Consul.
// ACL tokens and TLS settings come from the usual CONSUL_HTTP_* variables.
func New(addr, prefix string, logger *slog.Logger) (*Client, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	if prefix = strings.Trim(prefix, "/"); prefix == "" {
		prefix = DefaultPrefix
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", addr, err)
	}
	return &Client{api: c, transport: cfg.Transport, prefix: prefix, logger: logger}, nil
}

// Close releases the client's idle connections. Stop every watcher,
// registration and lock made from it first.
func (c *Client) Close() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

// Prefix returns the KV prefix this client's keys live under.
func (c *Client) Prefix() string { return c.prefix }

// QueueCountKey returns the KV key that holds the queue count N.
func (c *Client) QueueCountKey() string { return c.prefix + "/queues/count" }

// lockKey returns the KV key of the lock called name.
func (c *Client) lockKey(name string) string { return c.prefix + "/locks/" + name }

// Ping checks that the agent answers and has a cluster leader; it is meant
// for readiness probes.
func (c *Client) Ping(ctx context.Context) error {
	r, err := c.api.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("consul ping: %w", err)
	}
	if r == "" {
		return fmt.Errorf("consul ping: %w", ErrNoLeader)
	}
	return nil
}
