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

// Do sends r with c.
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
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
