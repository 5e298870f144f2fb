package client

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is an answer with an error status: the API's
// {"error": {"code", "message", "fields"}} object, with the status and
// Retry-After. An answer that is not that object (a proxy's page, say)
// has no Code and its body, shortened, as Message.
type Error struct {
	// Method and Path are the request's ("POST", "/v1/templates/7/claims").
	Method, Path string
	// Status is the HTTP status (4xx, 5xx).
	Status int
	// Code is the API's snake_case code ("sold_out"); see the Err
	// sentinels.
	Code string
	// Message is the API's human text.
	Message string
	// Fields name the fields at fault (invalid_argument only).
	Fields []FieldError
	// RetryAfter is the answer's Retry-After; 0 when it had none.
	RetryAfter time.Duration
}

// FieldError is one field at fault in an invalid_argument answer.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error reads "POST /v1/templates/7/claims: 409 sold_out: the template has
// no stock left".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.Path)
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(e.Status))
	if e.Code != "" {
		b.WriteByte(' ')
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	return b.String()
}

// Is reports whether target is the sentinel of e's code, so that
// errors.Is(err, ErrSoldOut) holds for a 409 sold_out.
func (e *Error) Is(target error) bool {
	s, ok := target.(*codeError)
	return ok && s.code == e.Code
}

// codeError is a sentinel: it stands for every *Error with its code.
type codeError struct{ code string }

func (s *codeError) Error() string { return "couponpush API error " + s.code }

// Code returns err's API code if err is (or wraps) an *Error, else "".
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// RetryAfter returns err's Retry-After if err is (or wraps) an *Error
// that carried one, else 0.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// The API's error codes, as sentinels for errors.Is (docs/api.md lists
// when each is answered).
var (
	// Every route.
	ErrInvalidJSON          = &codeError{"invalid_json"}           // 400
	ErrInvalidArgument      = &codeError{"invalid_argument"}       // 400, with Fields
	ErrUnauthorized         = &codeError{"unauthorized"}           // 401
	ErrForbidden            = &codeError{"forbidden"}              // 403
	ErrNotFound             = &codeError{"not_found"}              // 404: no such route
	ErrMethodNotAllowed     = &codeError{"method_not_allowed"}     // 405
	ErrBodyTooLarge         = &codeError{"body_too_large"}         // 413
	ErrUnsupportedMediaType = &codeError{"unsupported_media_type"} // 415
	ErrInternal             = &codeError{"internal"}               // 500
	ErrUnavailable          = &codeError{"unavailable"}            // 503, with RetryAfter

	// Templates and subscriptions.
	ErrTemplateNotFound     = &codeError{"template_not_found"}     // 404
	ErrHasSubscribers       = &codeError{"has_subscribers"}        // 409
	ErrSubscriptionNotFound = &codeError{"subscription_not_found"} // 404
	ErrTooLate              = &codeError{"too_late"}               // 409
	ErrAlreadySent          = &codeError{"already_sent"}           // 409
	ErrTooManyReminders     = &codeError{"too_many_reminders"}     // 409
	ErrTemplateChanged      = &codeError{"template_changed"}       // 409

	// Claims and coupons.
	ErrSoldOut         = &codeError{"sold_out"}          // 409
	ErrLimitReached    = &codeError{"limit_reached"}     // 409
	ErrNotStarted      = &codeError{"not_started"}       // 409
	ErrEnded           = &codeError{"ended"}             // 409
	ErrRequestConflict = &codeError{"request_conflict"}  // 409
	ErrClaimInProgress = &codeError{"claim_in_progress"} // 409: Claim resends
	ErrOutcomeUnknown  = &codeError{"outcome_unknown"}   // 503: Claim resends
	ErrCouponNotFound  = &codeError{"coupon_not_found"}  // 404
	ErrExpired         = &codeError{"expired"}           // 409
	ErrAlreadyUsed     = &codeError{"already_used"}      // 409
	ErrLocked          = &codeError{"locked"}            // 409

	// Abuse limits and blocks.
	ErrRateLimited   = &codeError{"rate_limited"}    // 429, with RetryAfter
	ErrBlocked       = &codeError{"blocked"}         // 403
	ErrBlockNotFound = &codeError{"block_not_found"} // 404
)

// errorBody is the API's error object.
type errorBody struct {
	Error struct {
		Code    string       `json:"code"`
		Message string       `json:"message"`
		Fields  []FieldError `json:"fields"`
	} `json:"error"`
}

// retryAfter parses a Retry-After header: whole seconds, or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 || s > int64(24*time.Hour/time.Second) {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
