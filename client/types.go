package client

import "time"

// Times come out of the API as RFC 3339 in UTC with three fractional
// digits and go in as any RFC 3339 time; time.Time reads and writes both.

// TemplateDraft is the body of POST /v1/templates. Zero optional fields
// are left out, so the API's defaults apply (per_user_limit 1, substocks
// 8, threshold_cents none). Exactly one of ValidUntil and ValidDays is
// required.
type TemplateDraft struct {
	Name           string     `json:"name"`
	Type           string     `json:"type"` // TypeFixed or TypePercent
	Value          int64      `json:"value"`
	ThresholdCents int64      `json:"threshold_cents,omitempty"`
	Stock          int64      `json:"stock"`
	PerUserLimit   int        `json:"per_user_limit,omitempty"`
	SubStocks      int        `json:"substocks,omitempty"`
	Priority       string     `json:"priority,omitempty"` // PriorityHigh, PriorityNormal or PriorityLow; "" = normal
	GrabStart      time.Time  `json:"grab_start"`
	GrabEnd        time.Time  `json:"grab_end"`
	ValidUntil     *time.Time `json:"valid_until,omitempty"`
	ValidDays      int        `json:"valid_days,omitempty"`
}

// Template types.
const (
	TypeFixed   = "fixed"   // Value is cents off
	TypePercent = "percent" // Value is 1-99 percent off
)

// Template priorities: which reminders go first when the cluster cannot
// emit everything that is due at once. Stored and answered; the scheduler
// does not use it yet.
const (
	PriorityHigh   = "high"
	PriorityNormal = "normal" // the default
	PriorityLow    = "low"
)

// TemplatePatch is the body of PATCH /v1/templates/{template_id}; nil
// fields are left alone. Priority may change even once the template has
// subscribers; grab_start may not.
type TemplatePatch struct {
	Name      *string    `json:"name,omitempty"`
	GrabStart *time.Time `json:"grab_start,omitempty"`
	GrabEnd   *time.Time `json:"grab_end,omitempty"`
	Priority  *string    `json:"priority,omitempty"`
}

// Template is a coupon template as the API answers it.
type Template struct {
	ID             int64      `json:"id"`
	Name           string     `json:"name"`
	Type           string     `json:"type"`
	Value          int64      `json:"value"`
	ThresholdCents int64      `json:"threshold_cents"`
	Stock          int64      `json:"stock"`
	Issued         int64      `json:"issued"`
	Remaining      int64      `json:"remaining"`
	PerUserLimit   int        `json:"per_user_limit"`
	SubStocks      int        `json:"substocks"`
	Priority       string     `json:"priority"` // PriorityHigh, PriorityNormal or PriorityLow
	GrabStart      time.Time  `json:"grab_start"`
	GrabEnd        time.Time  `json:"grab_end"`
	ValidUntil     *time.Time `json:"valid_until,omitempty"`
	ValidDays      int        `json:"valid_days,omitempty"`
	Version        int64      `json:"version"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// stockRequest is the body of POST /v1/templates/{template_id}/stock.
type stockRequest struct {
	Add int64 `json:"add"`
}

// SubscribeRequest is the optional body of PUT
// /v1/subscriptions/{user_id}/{template_id}; LeadSeconds 0 sends no body
// (the worker's default lead).
type SubscribeRequest struct {
	LeadSeconds int64 `json:"lead_seconds,omitempty"`
}

// Subscription is a reminder subscription as the API answers it.
type Subscription struct {
	UserID     int64      `json:"user_id"`
	TemplateID int64      `json:"template_id"`
	PushAt     time.Time  `json:"push_at"`
	Status     string     `json:"status"` // SubscriptionPending, ...
	PushID     string     `json:"push_id,omitempty"`
	SentAt     *time.Time `json:"sent_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
}

// Subscription statuses.
const (
	SubscriptionPending   = "pending"
	SubscriptionSent      = "sent"
	SubscriptionCancelled = "cancelled"
)

// Page asks for one page of GET /v1/subscriptions/{user_id}: the
// subscriptions after template id After (0: from the first), at most
// Limit of them (0: the API's maximum, 1000).
type Page struct {
	After int64
	Limit int
}

// SubscriptionPage is one page of a user's subscriptions, by template id.
type SubscriptionPage struct {
	Subscriptions []Subscription `json:"subscriptions"`
	// NextAfter, when not 0, is the After of the next page: this one was
	// full, so more may follow.
	NextAfter int64 `json:"next_after,omitempty"`
}

// ClaimRequest is the body of POST /v1/templates/{template_id}/claims.
// RequestID makes the claim idempotent: the same one again answers the
// same coupon. Claim makes a random one when it is "".
type ClaimRequest struct {
	UserID    int64  `json:"user_id"`
	RequestID string `json:"request_id"`
}

// OrderRequest is the body of lock, unlock and redeem.
type OrderRequest struct {
	UserID  int64  `json:"user_id"`
	OrderID string `json:"order_id"`
}

// Coupon is a claimed coupon as the API answers it.
type Coupon struct {
	ID         int64      `json:"id"`
	TemplateID int64      `json:"template_id"`
	UserID     int64      `json:"user_id"`
	RequestID  string     `json:"request_id"`
	Status     string     `json:"status"` // CouponUnused, ...
	OrderID    string     `json:"order_id,omitempty"`
	ExpiresAt  time.Time  `json:"expires_at"`
	ClaimedAt  time.Time  `json:"claimed_at"`
	UsedAt     *time.Time `json:"used_at,omitempty"`
}

// Coupon statuses, also the filters of ListCoupons ("" lists all).
const (
	CouponUnused  = "unused"
	CouponLocked  = "locked"
	CouponUsed    = "used"
	CouponExpired = "expired"
)

// couponBody is the {"coupon": {...}} of claim, lock, unlock and redeem.
type couponBody struct {
	Coupon Coupon `json:"coupon"`
}

// couponsBody is the answer of GET /v1/users/{user_id}/coupons.
type couponsBody struct {
	Coupons []Coupon `json:"coupons"`
}

// BlockRequest is the body of PUT /v1/admin/blocks/users/{user_id} and
// /v1/admin/blocks/ips/{ip}: both fields are required.
type BlockRequest struct {
	ForSeconds int64  `json:"for_seconds"`
	Reason     string `json:"reason"`
}

// Block is a block in effect.
type Block struct {
	Kind    string    `json:"kind"`    // BlockUser or BlockIP
	Subject string    `json:"subject"` // the user id in decimal, or the IP
	Reason  string    `json:"reason"`
	Until   time.Time `json:"until"`
	Who     string    `json:"who"` // "operator" or "auto"
}

// Block kinds.
const (
	BlockUser = "user"
	BlockIP   = "ip"
)

// blocksBody is the answer of GET /v1/admin/blocks.
type blocksBody struct {
	Blocks []Block `json:"blocks"`
}

// Readiness is the answer of GET /readyz: each check's "ok" or "down".
// Status is "ready" when all are ok.
type Readiness struct {
	Status string            `json:"status,omitempty"`
	Checks map[string]string `json:"checks"`
}
