package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

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

// Time limits of the HTTP calls to Consul. A blocking query is held by
// the agent for up to its wait time plus a sixteenth of it (jitter), so
// the answer of any call may take up to MaxBlockingWait and that jitter
// plus a margin; shorter calls are bounded by their contexts.
const (
	// MaxBlockingWait is the longest wait a blocking query of this package
	// asks for; it is also the default wait of the blocking queries
	// api.Lock makes (Consul's own default would be 5 minutes).
	MaxBlockingWait    = 30 * time.Second
	consulDialTimeout  = 5 * time.Second
	consulTLSTimeout   = 5 * time.Second
	consulAnswerMargin = 10 * time.Second
	// consulAnswerTimeout bounds the wait for the answer of any call.
	consulAnswerTimeout = MaxBlockingWait + MaxBlockingWait/16 + consulAnswerMargin
)

// Auth is how a Client authenticates to Consul and checks the agent's
// certificate. Zero fields fall back to the CONSUL_HTTP_* environment
// variables, as the consul command does.
type Auth struct {
	// Token is the ACL token sent with every call.
	Token string
	// CAFile is a PEM file of the CAs that sign the agent's certificate;
	// it (or CertFile) switches an address without a scheme to https.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key.
	CertFile, KeyFile string
	// ServerName is the name the agent's certificate must carry.
	ServerName string
}

// New returns a Client for the Consul agent at addr (host:port, optionally
// with an http:// or https:// scheme; "" means 127.0.0.1:8500) whose keys
// live under prefix ("" means "couponpush"; surrounding slashes are
// dropped). A nil logger discards logs. New does not contact Consul.
// ACL tokens and TLS settings come from the usual CONSUL_HTTP_* variables;
// NewWithAuth sets them explicitly.
func New(addr, prefix string, logger *slog.Logger) (*Client, error) {
	return NewWithAuth(addr, prefix, Auth{}, logger)
}

// NewWithAuth is New with an ACL token and TLS settings.
func NewWithAuth(addr, prefix string, auth Auth, logger *slog.Logger) (*Client, error) {
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
	cfg.WaitTime = MaxBlockingWait
	cfg.Transport.DialContext = (&net.Dialer{Timeout: consulDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	cfg.Transport.TLSHandshakeTimeout = consulTLSTimeout
	cfg.Transport.ResponseHeaderTimeout = consulAnswerTimeout
	if auth.Token != "" {
		cfg.Token = auth.Token
	}
	if auth.CAFile != "" || auth.CertFile != "" {
		if !strings.Contains(addr, "://") {
			cfg.Scheme = "https"
		}
		cfg.TLSConfig.CAFile = auth.CAFile
		cfg.TLSConfig.CertFile = auth.CertFile
		cfg.TLSConfig.KeyFile = auth.KeyFile
	}
	if auth.ServerName != "" {
		cfg.TLSConfig.Address = auth.ServerName
	}
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
