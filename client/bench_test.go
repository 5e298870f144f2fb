package client_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"couponpush/client"
)

// BenchmarkClaim compares the client's claim (Discard, as the benches send
// it) with a request built by hand the way the benches did before the
// client: the client must cost no more round trips and about the same
// allocations. go test -run - -bench Claim -benchmem ./client/
func BenchmarkClaim(b *testing.B) {
	const answer = `{"coupon":{"id":1,"template_id":7,"user_id":42,"request_id":"b42","status":"unused","expires_at":"2026-11-23T10:00:00.000Z","claimed_at":"2026-11-23T10:00:00.000Z"}}` + "\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, answer)
	}))
	defer srv.Close()
	hc := srv.Client()
	ctx := context.Background()
	c, err := client.New(client.Config{BaseURL: srv.URL, HTTPClient: hc, ClaimAttempts: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("client", func(b *testing.B) {
		for i := range b.N {
			u := int64(i + 1)
			if _, created, err := c.Claim(ctx, 7, client.ClaimRequest{UserID: u, RequestID: "b" + strconv.FormatInt(u, 10)},
				client.WithToken("token"), client.Discard()); err != nil || !created {
				b.Fatal(created, err)
			}
		}
	})
	b.Run("decoded", func(b *testing.B) {
		for i := range b.N {
			u := int64(i + 1)
			if _, _, err := c.Claim(ctx, 7, client.ClaimRequest{UserID: u, RequestID: "b" + strconv.FormatInt(u, 10)},
				client.WithToken("token")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("by-hand", func(b *testing.B) {
		url := srv.URL + "/v1/templates/7/claims"
		for i := range b.N {
			us := strconv.FormatInt(int64(i+1), 10)
			req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(`{"user_id":`+us+`,"request_id":"b`+us+`"}`))
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer token")
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusCreated {
				b.Fatal(fmt.Sprint(resp.StatusCode, err), string(bytes.TrimSpace(body)))
			}
		}
	})
}
