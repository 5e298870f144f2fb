// Package apiclient is the small JSON-over-HTTP caller the bench and the
// demo use against a worker's API, with the tokens it sends.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Request is one JSON call.
type Request struct {
	Method string
	URL    string
	Body   any // sent as JSON; nil: none
	Want   int // the expected status; any other is an error carrying the body
	Out    any // the answer is decoded into it; nil: discarded
	// Token is sent as the bearer token ("": none): an operator token or
	// a user's JWT (see Tokens).
	Token string
}

// StatusError is an answer with another status than the one wanted.
type StatusError struct {
	Method, URL string
	Status      int
	Body        string
	// RetryAfter is the answer's Retry-After (0: none).
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, e.Body)
}

// Do sends r with c. An answer with another status than r.Want is a
// *StatusError.
func Do(ctx context.Context, c *http.Client, r Request) error {
	method, url, body, want, out, token := r.Method, r.URL, r.Body, r.Want, r.Out, r.Token
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	authorize(req, token)
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, url, err)
	}
	if resp.StatusCode != want {
		e := &StatusError{Method: method, URL: url, Status: resp.StatusCode, Body: string(bytes.TrimSpace(b))}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return e
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
