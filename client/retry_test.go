package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// answer is one scripted answer of the fake API: a status, a code for an
// error, a Retry-After in seconds (0: none), or hangup to close the
// connection without answering.
type answer struct {
	status int
	code   string
	retry  int
	hangup bool
}

// fakeAPI answers the claims route from a script (the last answer
// repeats) and records every body it was sent.
type fakeAPI struct {
	mu     sync.Mutex
	script []answer
	bodies []string
	tokens []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, string(b))
	f.tokens = append(f.tokens, r.Header.Get("Authorization"))
	a := f.script[min(len(f.bodies), len(f.script))-1]
	f.mu.Unlock()
	if a.hangup {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	if a.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(a.retry))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	if a.code != "" {
		_, _ = io.WriteString(w, `{"error":{"code":"`+a.code+`","message":"scripted"}}`)
		return
	}
	var req ClaimRequest
	_ = json.Unmarshal(b, &req)
	_ = json.NewEncoder(w).Encode(couponBody{Coupon: Coupon{ID: 9, UserID: req.UserID, RequestID: req.RequestID, Status: CouponUnused}})
}

func (f *fakeAPI) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.bodies)
}

// newFake starts the fake and a client of it whose waits are recorded
// instead of slept (a wait fails with wakeErr when it is set).
func newFake(t *testing.T, cfg Config, script ...answer) (*Client, *fakeAPI, *[]time.Duration) {
	t.Helper()
	f := &fakeAPI{script: script}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg.BaseURL = srv.URL
	cfg.HTTPClient = srv.Client()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	c.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	return c, f, &waits
}

var (
	created      = answer{status: http.StatusCreated}
	ok           = answer{status: http.StatusOK}
	unknown      = answer{status: http.StatusServiceUnavailable, code: "outcome_unknown", retry: 1}
	inProgress   = answer{status: http.StatusConflict, code: "claim_in_progress"}
	rateLimited  = answer{status: http.StatusTooManyRequests, code: "rate_limited", retry: 2}
	soldOut      = answer{status: http.StatusConflict, code: "sold_out"}
	unavailable  = answer{status: http.StatusServiceUnavailable, code: "unavailable", retry: 1}
	hangup       = answer{hangup: true}
	longUnknown  = answer{status: http.StatusServiceUnavailable, code: "outcome_unknown", retry: 60}
	tooManyTries = DefaultClaimAttempts
)

// TestClaimRetries runs the claim protocol against scripted answers: what
// is resent (always the same body, so the same request_id), what is
// waited and what is returned.
func TestClaimRetries(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cfg         Config
		opts        []CallOption
		script      []answer
		sends       int
		waits       []time.Duration
		wantErr     error // nil: success
		wantCreated bool
		retryAfter  time.Duration // of the error
	}{
		{name: "201 at once", script: []answer{created}, sends: 1, wantCreated: true},
		{name: "outcome_unknown honours Retry-After, then 201", script: []answer{unknown, created},
			sends: 2, waits: []time.Duration{time.Second}, wantCreated: true},
		{name: "claim_in_progress without Retry-After backs off, then 200", script: []answer{inProgress, inProgress, ok},
			sends: 3, waits: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}},
		{name: "a hang-up is resent", script: []answer{hangup, created},
			sends: 2, waits: []time.Duration{100 * time.Millisecond}, wantCreated: true},
		{name: "outcome_unknown until the attempts are spent", script: []answer{unknown},
			sends: tooManyTries, waits: slices.Repeat([]time.Duration{time.Second}, tooManyTries-1),
			wantErr: ErrOutcomeUnknown, retryAfter: time.Second},
		{name: "attempts bounded by the config", cfg: Config{ClaimAttempts: 2}, script: []answer{inProgress},
			sends: 2, waits: []time.Duration{100 * time.Millisecond}, wantErr: ErrClaimInProgress},
		{name: "one attempt: no retries", cfg: Config{ClaimAttempts: 1}, script: []answer{unknown, created},
			sends: 1, wantErr: ErrOutcomeUnknown, retryAfter: time.Second},
		{name: "a Retry-After over MaxRetryWait is returned", script: []answer{longUnknown, created},
			sends: 1, wantErr: ErrOutcomeUnknown, retryAfter: time.Minute},
		{name: "429 is returned with its Retry-After", script: []answer{rateLimited, created},
			sends: 1, wantErr: ErrRateLimited, retryAfter: 2 * time.Second},
		{name: "429 waited out when the call opts in", opts: []CallOption{WaitRateLimited()}, script: []answer{rateLimited, created},
			sends: 2, waits: []time.Duration{2 * time.Second}, wantCreated: true},
		{name: "429 waited out when the config opts in", cfg: Config{WaitRateLimited: true}, script: []answer{rateLimited, unknown, created},
			sends: 3, waits: []time.Duration{2 * time.Second, time.Second}, wantCreated: true},
		{name: "429 waits are bounded", cfg: Config{WaitRateLimited: true, RateLimitAttempts: 3, ClaimAttempts: 1}, script: []answer{rateLimited},
			sends: 3, waits: []time.Duration{2 * time.Second, 2 * time.Second}, wantErr: ErrRateLimited, retryAfter: 2 * time.Second},
		{name: "sold_out is final", script: []answer{soldOut, created}, sends: 1, wantErr: ErrSoldOut},
		{name: "unavailable is returned, not resent", script: []answer{unavailable, created},
			sends: 1, wantErr: ErrUnavailable, retryAfter: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, f, waits := newFake(t, tc.cfg, tc.script...)
			cp, isNew, err := c.Claim(context.Background(), 3, ClaimRequest{UserID: 42}, tc.opts...)
			bodies := f.sent()
			if len(bodies) != tc.sends {
				t.Fatalf("sent %d times, want %d: %q", len(bodies), tc.sends, bodies)
			}
			for _, b := range bodies[1:] {
				if b != bodies[0] {
					t.Fatalf("a resend changed the body: %q, then %q", bodies[0], b)
				}
			}
			var first ClaimRequest
			if err := json.Unmarshal([]byte(bodies[0]), &first); err != nil || first.UserID != 42 || len(first.RequestID) != 32 {
				t.Fatalf("body %q (%v): want user 42 and a random request_id", bodies[0], err)
			}
			if !slices.Equal(*waits, tc.waits) {
				t.Fatalf("waited %v, want %v", *waits, tc.waits)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if isNew != tc.wantCreated || cp.RequestID != first.RequestID || cp.UserID != 42 {
					t.Fatalf("got %+v created %v, want created %v and the request_id sent", cp, isNew, tc.wantCreated)
				}
				return
			}
			var e *Error
			if !errors.Is(err, tc.wantErr) || !errors.As(err, &e) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if e.RetryAfter != tc.retryAfter || RetryAfter(err) != tc.retryAfter || Code(err) != e.Code {
				t.Fatalf("RetryAfter %v (%v), want %v", e.RetryAfter, RetryAfter(err), tc.retryAfter)
			}
		})
	}
}

// TestClaimContext shows a done context ends the retries: the wait
// returns at once and the error says both why the claim failed and why
// it stopped.
func TestClaimContext(t *testing.T) {
	c, f, _ := newFake(t, Config{}, unknown)
	ctx, cancel := context.WithCancel(context.Background())
	c.sleep = func(ctx context.Context, d time.Duration) error {
		cancel()
		return sleep(ctx, d)
	}
	_, _, err := c.Claim(ctx, 3, ClaimRequest{UserID: 42, RequestID: "mine"})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("err %v, want context.Canceled and outcome_unknown", err)
	}
	if n := len(f.sent()); n != 1 {
		t.Fatalf("sent %d times after the context was done, want 1", n)
	}
	if b := f.sent()[0]; b != `{"user_id":42,"request_id":"mine"}` {
		t.Fatalf("body %s", b)
	}
}

// TestTokens shows the token of the config and of one call.
func TestTokens(t *testing.T) {
	c, f, _ := newFake(t, Config{Token: "op"}, created)
	ctx := context.Background()
	for _, opts := range [][]CallOption{nil, {WithToken("user-jwt")}, {WithToken("")}} {
		if _, _, err := c.Claim(ctx, 1, ClaimRequest{UserID: 1, RequestID: "r"}, opts...); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"Bearer op", "Bearer user-jwt", ""}; !slices.Equal(f.tokens, want) {
		t.Fatalf("sent tokens %q, want %q", f.tokens, want)
	}
}

// TestDiscard shows Discard still tells created and skips the decoding.
func TestDiscard(t *testing.T) {
	c, _, _ := newFake(t, Config{}, created)
	cp, isNew, err := c.Claim(context.Background(), 1, ClaimRequest{UserID: 1, RequestID: "r"}, Discard())
	if err != nil || !isNew || cp != (Coupon{}) {
		t.Fatalf("got %+v %v %v, want a zero coupon, created", cp, isNew, err)
	}
}

// TestErrorAnswers shows how error answers are read: the API's object
// with its fields, and a body that is not one.
func TestErrorAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, body, header string
		status             int
		want               Error
	}{
		{"api error with fields", `{"error":{"code":"invalid_argument","message":"stock: bad","fields":[{"field":"stock","message":"bad"}]}}`, "",
			400, Error{Status: 400, Code: "invalid_argument", Message: "stock: bad", Fields: []FieldError{{"stock", "bad"}}}},
		{"not json", "<html>bad gateway</html>", "", 502, Error{Status: 502, Message: "<html>bad gateway</html>"}},
		{"retry-after date", `{"error":{"code":"unavailable","message":"m"}}`, time.Now().Add(time.Hour).UTC().Format(http.TimeFormat),
			503, Error{Status: 503, Code: "unavailable", Message: "m"}},
		{"retry-after garbage", `{"error":{"code":"unavailable","message":"m"}}`, "soon", 503, Error{Status: 503, Code: "unavailable", Message: "m"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tc.header != "" {
					w.Header().Set("Retry-After", tc.header)
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c, err := New(Config{BaseURL: srv.URL, HTTPClient: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Template(context.Background(), 7)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v is no *Error", err)
			}
			if tc.name == "retry-after date" {
				if e.RetryAfter < 59*time.Minute || e.RetryAfter > time.Hour {
					t.Fatalf("RetryAfter %v from a date an hour ahead", e.RetryAfter)
				}
				e.RetryAfter = 0
			}
			tc.want.Method, tc.want.Path = "GET", "/v1/templates/7"
			if e.Error() != tc.want.Error() || !slices.Equal(e.Fields, tc.want.Fields) || e.Code != tc.want.Code {
				t.Fatalf("got %+v, want %+v", *e, tc.want)
			}
		})
	}
}

// TestConfig shows Validate's refusals and New returning them.
func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{BaseURL: "http://127.0.0.1:8080/"}, true},
		{"no base", Config{}, false},
		{"not http", Config{BaseURL: "ftp://x"}, false},
		{"no host", Config{BaseURL: "http://"}, false},
		{"query", Config{BaseURL: "http://x/?a=1"}, false},
		{"token with newline", Config{BaseURL: "http://x", Token: "a\nb"}, false},
		{"negative attempts", Config{BaseURL: "http://x", ClaimAttempts: -1}, false},
		{"wait above max", Config{BaseURL: "http://x", RetryWait: time.Minute, MaxRetryWait: time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg)
			if (err == nil) != tc.ok || (c != nil) != tc.ok {
				t.Fatalf("New: %v", err)
			}
			if tc.ok && c.BaseURL() != "http://127.0.0.1:8080" {
				t.Fatalf("BaseURL %q", c.BaseURL())
			}
		})
	}
}

// FuzzClaimBody checks the appended claim body says what encoding/json
// would.
func FuzzClaimBody(f *testing.F) {
	for _, s := range []string{"r1", `a"b`, `a\b`, "é", "<&>", "\x00", "\xff", " "} {
		f.Add(int64(1), s)
	}
	f.Fuzz(func(t *testing.T, user int64, rid string) {
		b, err := claimBody(ClaimRequest{UserID: user, RequestID: rid})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(ClaimRequest{UserID: user, RequestID: rid})
		if string(b) != string(want) {
			t.Fatalf("claimBody %s, encoding/json %s", b, want)
		}
	})
}
