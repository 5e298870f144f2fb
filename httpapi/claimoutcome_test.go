package httpapi

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

// TestClaimOutcomes claims through the API and checks that OnClaim is told
// each answer's outcome, from the closed list ClaimOutcomes.
func TestClaimOutcomes(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		got []string
	)
	f := newCouponFixtureOf(t, func(c *Config) {
		c.OnClaim = func(o string) {
			mu.Lock()
			got = append(got, o)
			mu.Unlock()
		}
	}, "")
	hot := fmt.Sprintf("/v1/templates/%d/claims", f.hot)
	for _, tc := range []struct {
		name, path, body string
		want             string
	}{
		{"first claim", hot, `{"user_id":1,"request_id":"a"}`, "issued"},
		{"same request again", hot, `{"user_id":1,"request_id":"a"}`, "replayed"},
		{"request id of another user", hot, `{"user_id":2,"request_id":"a"}`, "request_conflict"},
		{"second claim", hot, `{"user_id":1,"request_id":"b"}`, "issued"},
		{"over the per-user limit", hot, `{"user_id":1,"request_id":"c"}`, "limit_reached"},
		{"not started", fmt.Sprintf("/v1/templates/%d/claims", f.later), `{"user_id":1,"request_id":"d"}`, "not_started"},
		{"no such template", "/v1/templates/999999999/claims", `{"user_id":1,"request_id":"e"}`, "template_not_found"},
		{"bad json", hot, `{"user_id":`, "bad_request"},
		{"bad template id", "/v1/templates/x/claims", `{"user_id":1,"request_id":"f"}`, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			r := f.do(t, "POST", tc.path, jsonCT, tc.body)
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(got, []string{tc.want}) {
				t.Fatalf("OnClaim told %q, want [%s] (answer %d %s)", got, tc.want, r.status, r.raw)
			}
		})
	}
}

func TestClaimOutcomeIsBounded(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
		want   string
	}{
		{201, "", "issued"},
		{200, "", "replayed"},
		{409, "sold_out", "sold_out"},
		{400, "invalid_argument", "bad_request"},
		{413, "body_too_large", "bad_request"},
		{403, "forbidden", "other"},
		{500, "internal", "other"},
		{409, "a code no one knows", "other"},
		{0, "", "other"},
	} {
		t.Run(fmt.Sprint(tc.status, tc.code), func(t *testing.T) {
			if got := claimOutcome(tc.status, tc.code); got != tc.want || !slices.Contains(ClaimOutcomes, got) {
				t.Fatalf("claimOutcome(%d, %q) = %q, want %q", tc.status, tc.code, got, tc.want)
			}
		})
	}
}
