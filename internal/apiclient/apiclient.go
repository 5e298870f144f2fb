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

// Do sends body (nil: none) as JSON without a token and decodes the
// answer into out (nil: discard); any status other than want is an error
// carrying the body.
func Do(ctx context.Context, c *http.Client, method, url string, body any, want int, out any) error {
	return DoAs(ctx, c, "", method, url, body, want, out)
}

// DoAs is Do with token as the bearer token ("" sends none): an operator
// token or a user's JWT (see Tokens).
func DoAs(ctx context.Context, c *http.Client, token, method, url string, body any, want int, out any) error {
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
