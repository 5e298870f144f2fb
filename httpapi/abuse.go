package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"couponpush/abuse"
)

// Guard is the abuse guard the API needs; *abuse.Guard is one.
type Guard interface {
	// Admit returns nil to go ahead, an *abuse.Refusal (ErrLimited,
	// ErrBlocked) to refuse, or an engine error.
	Admit(ctx context.Context, a abuse.Action, user int64, ip netip.Addr) error
	Block(ctx context.Context, s abuse.Subject, d time.Duration, reason string) (abuse.Block, error)
	// Release returns abuse.ErrNoBlock when s is not blocked.
	Release(ctx context.Context, s abuse.Subject) error
	List(ctx context.Context) ([]abuse.Block, error)
}

// blockRoutes are the dark room of CONTRACT.md "Abuse limits" (operators
// only, like every /v1/admin/ route). None without Config.Guard.
func blockRoutes() []route {
	return []route{
		{"GET /v1/admin/blocks", operators, (*api).listBlocks},
		{"PUT /v1/admin/blocks/users/{user_id}", operators, (*api).putBlock},
		{"DELETE /v1/admin/blocks/users/{user_id}", operators, (*api).releaseBlock},
		{"PUT /v1/admin/blocks/ips/{ip}", operators, (*api).putBlock},
		{"DELETE /v1/admin/blocks/ips/{ip}", operators, (*api).releaseBlock},
	}
}

// admit checks a claim or subscription write for user against the blocks
// and rate limits; a non-nil answer is the request's refusal, and nothing
// may be written then. Handlers call it after decoding the request and
// before the service call.
func (a *api) admit(r *http.Request, act abuse.Action, user int64) *apiError {
	if a.cfg.Guard == nil {
		return nil
	}
	err := a.cfg.Guard.Admit(r.Context(), act, user, clientIP(r, a.cfg.TrustedProxies))
	var ref *abuse.Refusal
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ref) && errors.Is(err, abuse.ErrBlocked):
		return &apiError{status: http.StatusForbidden, code: "blocked",
			message: "this " + string(ref.Kind) + " is blocked from claims and subscription changes for a while"}
	case errors.As(err, &ref):
		return &apiError{status: http.StatusTooManyRequests, code: "rate_limited",
			message: "too many requests for this " + string(ref.Kind) + "; retry after Retry-After seconds", retryAfter: max(ref.RetryAfter, time.Second)}
	}
	a.log.WarnContext(r.Context(), "abuse guard unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	return &apiError{status: http.StatusServiceUnavailable, code: "unavailable",
		message: "a backing service is unavailable; retry later", retryAfter: time.Second}
}

// blockSubject parses the {user_id} or {ip} of a block route.
func blockSubject(r *http.Request) (abuse.Subject, *apiError) {
	if r.PathValue("user_id") != "" {
		id, e := pathID(r, "user_id")
		if e != nil {
			return abuse.Subject{}, e
		}
		return abuse.UserSubject(id), nil
	}
	ip, err := netip.ParseAddr(r.PathValue("ip"))
	if err != nil || ip.Zone() != "" {
		return abuse.Subject{}, invalidArgument("ip", "must be an IPv4 or IPv6 address")
	}
	return abuse.IPSubject(ip), nil
}

type blockRequest struct {
	ForSeconds *int64  `json:"for_seconds"`
	Reason     *string `json:"reason"`
}

// maxBlockSeconds is abuse.MaxBlock in seconds.
const maxBlockSeconds = int64(abuse.MaxBlock / time.Second)

// decodeBlock decodes PUT /v1/admin/blocks/...: for_seconds 1 to
// maxBlockSeconds and a reason of 1 to abuse.MaxReason printable
// characters, both required.
func decodeBlock(body []byte) (time.Duration, string, *apiError) {
	var req blockRequest
	if e := decodeObject(body, &req); e != nil {
		return 0, "", e
	}
	if req.ForSeconds == nil || *req.ForSeconds < 1 || *req.ForSeconds > maxBlockSeconds {
		return 0, "", invalidArgument("for_seconds", "must be a whole number of seconds from 1 to "+itoa(maxBlockSeconds))
	}
	if req.Reason == nil {
		return 0, "", invalidArgument("reason", "is required")
	}
	reason := strings.TrimSpace(*req.Reason)
	if reason == "" || utf8.RuneCountInString(reason) > abuse.MaxReason || !utf8.ValidString(reason) ||
		strings.ContainsFunc(reason, unicode.IsControl) {
		return 0, "", invalidArgument("reason", "must be 1 to "+itoa(abuse.MaxReason)+" printable characters")
	}
	return time.Duration(*req.ForSeconds) * time.Second, reason, nil
}

func (a *api) putBlock(w http.ResponseWriter, r *http.Request) {
	s, e := blockSubject(r)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	b, ok := a.body(w, r)
	if !ok {
		return
	}
	d, reason, e := decodeBlock(b)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	blk, err := a.cfg.Guard.Block(r.Context(), s, d, reason)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, blockOut(blk))
}

func (a *api) releaseBlock(w http.ResponseWriter, r *http.Request) {
	s, e := blockSubject(r)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if err := a.cfg.Guard.Release(r.Context(), s); err != nil {
		if errors.Is(err, abuse.ErrNoBlock) {
			writeError(w, http.StatusNotFound, "block_not_found", "no block of this "+string(s.Kind)+" is in effect")
			return
		}
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) listBlocks(w http.ResponseWriter, r *http.Request) {
	bs, err := a.cfg.Guard.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, blocksBody{Blocks: each(bs, blockOut)})
}

type blockJSON struct {
	Kind    string   `json:"kind"`
	Subject string   `json:"subject"`
	Reason  string   `json:"reason"`
	Until   jsonTime `json:"until"`
	Who     string   `json:"who"`
}

type blocksBody struct {
	Blocks []blockJSON `json:"blocks"`
}

func blockOut(b abuse.Block) blockJSON {
	return blockJSON{Kind: string(b.Subject.Kind), Subject: b.Subject.ID, Reason: b.Reason, Until: jsonTime(b.Until), Who: string(b.Who)}
}
