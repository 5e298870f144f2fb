package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults.
const (
	// DefaultTimeout bounds one request of the default http.Client.
	DefaultTimeout = 30 * time.Second
	// DefaultClaimAttempts is how many times Claim sends one claim at most
	// (the first send and its retries).
	DefaultClaimAttempts = 8
	// DefaultRetryWait is the first wait between claim sends when the
	// answer has no Retry-After; it doubles each time, up to MaxRetryWait.
	DefaultRetryWait = 100 * time.Millisecond
	// DefaultMaxRetryWait caps every wait between sends; a longer
	// Retry-After ends the retries and returns the error.
	DefaultMaxRetryWait = 10 * time.Second
	// DefaultRateLimitAttempts is how many times a call that waits out
	// 429 rate_limited is sent at most.
	DefaultRateLimitAttempts = 20
)

// Config configures a Client. BaseURL is required; zero values elsewhere
// mean defaults.
type Config struct {
	// BaseURL is the API's root ("http://127.0.0.1:8080"); paths are
	// appended to it.
	BaseURL string
	// Token is the bearer token of every call (a user's JWT or an
	// operator token) unless the call gives its own with WithToken; ""
	// sends none (a worker with auth off).
	Token string
	// HTTPClient sends the requests; default one with DefaultTimeout and
	// http.DefaultTransport. Share one across Clients to share its pool.
	HTTPClient *http.Client
	// ClaimAttempts bounds the sends of one claim; default
	// DefaultClaimAttempts. 1 turns the claim retries off.
	ClaimAttempts int
	// RetryWait is the first wait between claim sends without a
	// Retry-After; default DefaultRetryWait.
	RetryWait time.Duration
	// MaxRetryWait caps the waits; default DefaultMaxRetryWait.
	MaxRetryWait time.Duration
	// WaitRateLimited makes every call wait out 429 rate_limited, as
	// WaitRateLimited does for one call.
	WaitRateLimited bool
	// RateLimitAttempts bounds the sends of a call that waits out 429s;
	// default DefaultRateLimitAttempts.
	RateLimitAttempts int
	// UserAgent, if set, is sent as User-Agent.
	UserAgent string
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: DefaultTimeout}
	}
	if c.ClaimAttempts == 0 {
		c.ClaimAttempts = DefaultClaimAttempts
	}
	if c.RetryWait == 0 {
		c.RetryWait = DefaultRetryWait
	}
	if c.MaxRetryWait == 0 {
		c.MaxRetryWait = DefaultMaxRetryWait
	}
	if c.RateLimitAttempts == 0 {
		c.RateLimitAttempts = DefaultRateLimitAttempts
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	return c
}

// Validate reports every problem of c (defaults applied first), joined.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("client: config: "+format, args...)) }
	if c.BaseURL == "" {
		bad("BaseURL is required")
	} else if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" {
		bad("BaseURL %q must be an http or https URL with a host and no query", c.BaseURL)
	}
	if strings.ContainsAny(c.Token, "\r\n") {
		bad("Token must not contain a line break")
	}
	if c.ClaimAttempts < 1 || c.RateLimitAttempts < 1 {
		bad("ClaimAttempts and RateLimitAttempts must be at least 1")
	}
	if c.RetryWait < 0 || c.MaxRetryWait < c.RetryWait {
		bad("RetryWait must not be negative nor above MaxRetryWait")
	}
	return errors.Join(errs...)
}

// Client calls one couponpush API. It is safe for concurrent use.
type Client struct {
	cfg Config
	hc  *http.Client
	// sleep waits d or until ctx is done; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// New returns a Client, or the problems of cfg (see Validate).
func New(cfg Config) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, hc: cfg.HTTPClient, sleep: sleep}, nil
}

// BaseURL is the API root the client calls.
func (c *Client) BaseURL() string { return c.cfg.BaseURL }

// CallOption changes one call.
type CallOption struct {
	token    string
	hasToken bool
	wait     bool
	discard  bool
}

// WithToken sends token as this call's bearer token instead of
// Config.Token ("" sends none).
func WithToken(token string) CallOption { return CallOption{token: token, hasToken: true} }

// WaitRateLimited makes this call wait out a 429 rate_limited (its
// Retry-After) and send the request again, at most
// Config.RateLimitAttempts times, instead of returning it.
func WaitRateLimited() CallOption { return CallOption{wait: true} }

// Discard reads a successful answer's body and drops it instead of
// decoding it: the call returns zero values but for what the status tells
// (Claim's and Subscribe's created). For load generators, whose decoding
// would take CPU from the system they measure.
func Discard() CallOption { return CallOption{discard: true} }

// call is one request, resolved from its options.
type call struct {
	method, path string
	body         []byte // nil: none
	token        string
	wait         bool
	discard      bool
}

func (c *Client) newCall(method, path string, body []byte, opts []CallOption) call {
	k := call{method: method, path: path, body: body, token: c.cfg.Token, wait: c.cfg.WaitRateLimited}
	for _, o := range opts {
		if o.hasToken {
			k.token = o.token
		}
		k.wait = k.wait || o.wait
		k.discard = k.discard || o.discard
	}
	return k
}

// do sends k until it is answered with something other than a 429 it
// should wait out, and decodes a 2xx answer into out (nil: dropped). It
// returns the status of a 2xx answer; any other is an *Error.
func (c *Client) do(ctx context.Context, k call, out any) (int, error) {
	for attempt := 1; ; attempt++ {
		status, err := c.send(ctx, k, out)
		var e *Error
		if !k.wait || attempt >= c.cfg.RateLimitAttempts || !errors.As(err, &e) || e.Code != "rate_limited" {
			return status, err
		}
		wait := max(e.RetryAfter, time.Second)
		if wait > c.cfg.MaxRetryWait {
			return status, err
		}
		if err := c.sleep(ctx, wait); err != nil {
			return 0, fmt.Errorf("%s %s: waiting out rate_limited: %w", k.method, k.path, err)
		}
	}
}

// request builds k's request.
func (c *Client) request(ctx context.Context, k call) (*http.Request, error) {
	var body io.Reader = http.NoBody
	if k.body != nil {
		body = bytes.NewReader(k.body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, c.cfg.BaseURL+k.path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", k.method, k.path, err)
	}
	if k.body != nil {
		req.Header["Content-Type"] = jsonType
	}
	if k.token != "" {
		req.Header["Authorization"] = []string{"Bearer " + k.token}
	}
	if c.cfg.UserAgent != "" {
		req.Header["User-Agent"] = []string{c.cfg.UserAgent}
	}
	return req, nil
}

// send sends k once. A 2xx answer is decoded into out (nil, Discard or
// 204: read and dropped) and its status returned; any other is an *Error.
func (c *Client) send(ctx context.Context, k call, out any) (int, error) {
	req, err := c.request(ctx, k)
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, &transportError{method: k.method, path: k.path, err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil {
			return 0, &transportError{method: k.method, path: k.path, err: fmt.Errorf("read answer: %w", err)}
		}
		return 0, c.apiError(k, resp, b)
	}
	if out == nil || k.discard || resp.StatusCode == http.StatusNoContent {
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return 0, &transportError{method: k.method, path: k.path, err: fmt.Errorf("read answer: %w", err)}
		}
		return resp.StatusCode, nil
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, &transportError{method: k.method, path: k.path, err: fmt.Errorf("read answer: %w", err)}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return 0, fmt.Errorf("%s %s: decode the %d answer: %w", k.method, k.path, resp.StatusCode, err)
	}
	return resp.StatusCode, nil
}

// raw sends k once and returns the answer with its body read (closed).
func (c *Client) raw(ctx context.Context, k call) (*http.Response, []byte, error) {
	req, err := c.request(ctx, k)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, &transportError{method: k.method, path: k.path, err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, &transportError{method: k.method, path: k.path, err: fmt.Errorf("read answer: %w", err)}
	}
	return resp, b, nil
}

// maxErrorBody bounds what is read of an error answer.
const maxErrorBody = 64 << 10

var jsonType = []string{"application/json"}

// apiError builds the *Error of an error answer with body b.
func (c *Client) apiError(k call, resp *http.Response, b []byte) *Error {
	e := &Error{Method: k.method, Path: k.path, Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header, time.Now())}
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		e.Code, e.Message, e.Fields = eb.Error.Code, eb.Error.Message, eb.Error.Fields
		return e
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	e.Message = msg
	return e
}

// transportError is a request that got no answer: it may or may not have
// reached the API.
type transportError struct {
	method, path string
	err          error
}

func (e *transportError) Error() string { return e.method + " " + e.path + ": " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// NewRequestID returns a random request_id (32 hex digits), for a claim
// the caller will retry itself.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
