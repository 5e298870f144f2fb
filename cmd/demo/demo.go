package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"couponpush/client"
	"couponpush/internal/devtoken"
)

// readTokens reads the operator token and the HS256 secret run.sh wrote;
// both empty means the workers run with auth off.
func readTokens(opFile, secretFile string) (devtoken.Tokens, error) {
	if opFile == "" && secretFile == "" {
		return devtoken.Tokens{}, nil
	}
	op, err := os.ReadFile(opFile)
	if err != nil {
		return devtoken.Tokens{}, err
	}
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		return devtoken.Tokens{}, err
	}
	return devtoken.Tokens{Operator: strings.TrimSpace(string(op)), Secret: bytes.TrimRight(secret, "\r\n")}, nil
}

// counting counts the answers 429 rate_limited the clients waited out.
type counting struct {
	next    http.RoundTripper
	limited atomic.Int64
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		c.limited.Add(1)
	}
	return resp, err
}

// clients makes one API client per base URL, sharing one transport, as the
// operator. Each waits out 429 rate_limited as a polite client does: the
// demo subscribes thousands of users from one IP, more than the per-IP
// limit lets through at once.
func clients(apis []string, operator string, rt http.RoundTripper) ([]*client.Client, error) {
	hc := &http.Client{Transport: rt, Timeout: client.DefaultTimeout}
	var cs []*client.Client
	for _, api := range apis {
		c, err := client.New(client.Config{BaseURL: api, Token: operator, HTTPClient: hc,
			WaitRateLimited: true, RateLimitAttempts: 1000, UserAgent: "couponpush-demo"})
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func run(ctx context.Context, apis []string, tokens devtoken.Tokens, users int, in time.Duration, out io.Writer) error {
	if users < 1 || in < 10*time.Second {
		return fmt.Errorf("need -users ≥ 1 and -in ≥ 10s")
	}
	rt := &counting{next: http.DefaultTransport}
	cs, err := clients(apis, tokens.Operator, rt)
	if err != nil {
		return err
	}
	due := time.Now().Add(in).Truncate(time.Second)
	grab := due.Add(time.Minute)
	tpl, err := cs[0].CreateTemplate(ctx, client.TemplateDraft{
		Name: "Demo drop: 5 off", Type: client.TypeFixed, Value: 500,
		Stock: 100_000, GrabStart: grab, GrabEnd: grab.Add(time.Hour), ValidDays: 7,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "demo: template %d grabs at %s; reminders due at %s\n", tpl.ID, grab.Format(time.TimeOnly), due.Format(time.TimeOnly))
	// as is the call option of user u's own token.
	as := func(u int64) (client.CallOption, error) {
		tok, err := tokens.User(u)
		return client.WithToken(tok), err
	}
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for {
				u := next.Add(1)
				if u > int64(users) {
					return
				}
				tok, err := as(u)
				if err == nil {
					var created bool
					_, created, err = cs[int(u)%len(cs)].Subscribe(ctx, u, tpl.ID, client.SubscribeRequest{}, tok)
					if err == nil && !created {
						err = fmt.Errorf("user %d was subscribed already", u)
					}
				}
				if err != nil {
					errc <- err
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	// A few users change their mind: their reminders must never arrive.
	cancelled := 0
	for u := int64(7); u <= int64(users); u += 100 {
		tok, err := as(u)
		if err == nil {
			err = cs[0].Unsubscribe(ctx, u, tpl.ID, tok)
		}
		if err != nil {
			return err
		}
		cancelled++
	}
	fmt.Fprintf(out, "demo: %d subscribed, %d cancelled (%d answers 429 rate_limited waited out); expect %d pushes at %s (in %v)\n",
		done.Load(), cancelled, rt.limited.Load(), done.Load()-int64(cancelled), due.Format(time.TimeOnly), time.Until(due).Round(time.Second))
	return nil
}
