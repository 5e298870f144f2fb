package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"couponpush/internal/apiclient"
)

// readTokens reads the operator token and the HS256 secret run.sh wrote;
// both empty means the workers run with auth off.
func readTokens(opFile, secretFile string) (apiclient.Tokens, error) {
	if opFile == "" && secretFile == "" {
		return apiclient.Tokens{}, nil
	}
	op, err := os.ReadFile(opFile)
	if err != nil {
		return apiclient.Tokens{}, err
	}
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		return apiclient.Tokens{}, err
	}
	return apiclient.Tokens{Operator: strings.TrimSpace(string(op)), Secret: bytes.TrimRight(secret, "\r\n")}, nil
}

func run(ctx context.Context, apis []string, tokens apiclient.Tokens, users int, in time.Duration, out io.Writer) error {
	if users < 1 || in < 10*time.Second {
		return fmt.Errorf("need -users ≥ 1 and -in ≥ 10s")
	}
	due := time.Now().Add(in).Truncate(time.Second)
	grab := due.Add(time.Minute)
	var tpl struct {
		ID int64 `json:"id"`
	}
	err := call(ctx, tokens.Operator, "POST", apis[0]+"/v1/templates", map[string]any{
		"name": "Demo drop: 5 off", "type": "fixed", "value": 500, "threshold_cents": 0,
		"stock": 100_000, "grab_start": grab.UTC().Format(time.RFC3339), "grab_end": grab.Add(time.Hour).UTC().Format(time.RFC3339),
		"valid_days": 7,
	}, http.StatusCreated, &tpl)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "demo: template %d grabs at %s; reminders due at %s\n", tpl.ID, grab.Format(time.TimeOnly), due.Format(time.TimeOnly))
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				u := next.Add(1)
				if u > int64(users) {
					return
				}
				url := fmt.Sprintf("%s/v1/subscriptions/%d/%d", apis[int(u)%len(apis)], u, tpl.ID)
				tok, err := tokens.User(u)
				if err == nil {
					err = call(ctx, tok, "PUT", url, nil, http.StatusCreated, nil)
				}
				if err != nil {
					errc <- err
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	// A few users change their mind: their reminders must never arrive.
	cancelled := 0
	for u := 7; u <= users; u += 100 {
		url := fmt.Sprintf("%s/v1/subscriptions/%d/%d", apis[0], u, tpl.ID)
		tok, err := tokens.User(int64(u))
		if err == nil {
			err = call(ctx, tok, "DELETE", url, nil, http.StatusNoContent, nil)
		}
		if err != nil {
			return err
		}
		cancelled++
	}
	fmt.Fprintf(out, "demo: %d subscribed, %d cancelled (%d answers 429 rate_limited waited out); expect %d pushes at %s (in %v)\n",
		done.Load(), cancelled, limited.Load(), done.Load()-int64(cancelled), due.Format(time.TimeOnly), time.Until(due).Round(time.Second))
	return nil
}

// limited counts the answers 429 rate_limited that call waited out.
var limited atomic.Int64

// call sends one request as a polite client does: a 429 rate_limited is
// retried after its Retry-After (the demo subscribes thousands of users
// from one IP, more than the per-IP limit lets through at once).
func call(ctx context.Context, token, method, url string, body any, want int, out any) error {
	for {
		err := apiclient.Do(ctx, http.DefaultClient, apiclient.Request{Method: method, URL: url, Body: body, Want: want, Out: out, Token: token})
		var se *apiclient.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusTooManyRequests {
			return err
		}
		limited.Add(1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(se.RetryAfter, time.Second)):
		}
	}
}
