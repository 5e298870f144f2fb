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

// Config configures a Client. Zero values mean the defaults.
type Config struct {
	// Addr is the Consul agent's address, host:port, optionally with an
	// http:// or https:// scheme. Default DefaultAddr.
	Addr string
	// Prefix starts every KV key of the deployment; surrounding slashes
	// are dropped. Default DefaultPrefix.
	Prefix string
	// Auth is the ACL token and TLS settings; zero fields fall back to the
	// CONSUL_HTTP_* environment variables.
	Auth Auth
	// Logger receives lock and registration events; nil discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every zero field set to its default
// (and Prefix's surrounding slashes dropped).
func (c Config) WithDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Prefix = strings.Trim(c.Prefix, "/"); c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c (defaults applied first), joined.
// Every Config is valid today: New reports an address the Consul API
// client refuses, and the agent a bad token.
func (c Config) Validate() error {
	return nil
}

// New returns a Client for the Consul agent at cfg.Addr whose keys live
// under cfg.Prefix, with every call bounded (see the time limits above).
// New does not contact Consul.
func New(cfg Config) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ac := api.DefaultConfig()
	ac.Address = cfg.Addr
	ac.WaitTime = MaxBlockingWait
	ac.Transport.DialContext = (&net.Dialer{Timeout: consulDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	ac.Transport.TLSHandshakeTimeout = consulTLSTimeout
	ac.Transport.ResponseHeaderTimeout = consulAnswerTimeout
	auth := cfg.Auth
	if auth.Token != "" {
		ac.Token = auth.Token
	}
	if auth.CAFile != "" || auth.CertFile != "" {
		if !strings.Contains(cfg.Addr, "://") {
			ac.Scheme = "https"
		}
		ac.TLSConfig.CAFile = auth.CAFile
		ac.TLSConfig.CertFile = auth.CertFile
		ac.TLSConfig.KeyFile = auth.KeyFile
	}
	if auth.ServerName != "" {
		ac.TLSConfig.Address = auth.ServerName
	}
	c, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", cfg.Addr, err)
	}
	return &Client{api: c, transport: ac.Transport, prefix: cfg.Prefix, logger: cfg.Logger}, nil
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
