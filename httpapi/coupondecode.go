package httpapi

import (
	"net/http"

	"couponpush/coupon"
	"couponpush/template"
)

type claimRequest struct {
	UserID    *int64  `json:"user_id"`
	RequestID *string `json:"request_id"`
}

// positiveID checks a required id from a body.
func positiveID(field string, v *int64) *apiError {
	if v == nil {
		return invalidArgument(field, "is required")
	}
	if *v <= 0 {
		return invalidArgument(field, "must be a positive 64-bit integer")
	}
	return nil
}

// clientID checks a required client-chosen id (request_id, order_id).
func clientID(field string, v *string) *apiError {
	if v == nil {
		return invalidArgument(field, "is required")
	}
	if !coupon.ValidClientID(*v) {
		return invalidArgument(field, coupon.ClientIDRule)
	}
	return nil
}

// decodeClaim decodes POST /v1/templates/{id}/claims.
func decodeClaim(body []byte) (user int64, requestID string, e *apiError) {
	var req claimRequest
	if e := decodeObject(body, &req); e != nil {
		return 0, "", e
	}
	if e := positiveID("user_id", req.UserID); e != nil {
		return 0, "", e
	}
	if e := clientID("request_id", req.RequestID); e != nil {
		return 0, "", e
	}
	return *req.UserID, *req.RequestID, nil
}

type orderRequest struct {
	UserID  *int64  `json:"user_id"`
	OrderID *string `json:"order_id"`
}

// decodeOrder decodes the body of lock, unlock and redeem.
func decodeOrder(body []byte) (user int64, orderID string, e *apiError) {
	var req orderRequest
	if e := decodeObject(body, &req); e != nil {
		return 0, "", e
	}
	if e := positiveID("user_id", req.UserID); e != nil {
		return 0, "", e
	}
	if e := clientID("order_id", req.OrderID); e != nil {
		return 0, "", e
	}
	return *req.UserID, *req.OrderID, nil
}

type stockRequest struct {
	Add *int64 `json:"add"`
}

// decodeStock decodes POST /v1/templates/{id}/stock.
func decodeStock(body []byte) (int64, *apiError) {
	var req stockRequest
	if e := decodeObject(body, &req); e != nil {
		return 0, e
	}
	if req.Add == nil {
		return 0, invalidArgument("add", "is required")
	}
	if *req.Add < 1 || *req.Add > template.MaxStock {
		return 0, invalidArgument("add", "must be 1 to 1000000000")
	}
	return *req.Add, nil
}

// statusQuery reads ?status= of the coupon list; "" means all.
func statusQuery(r *http.Request) (coupon.Status, *apiError) {
	q := r.URL.Query()
	if len(q["status"]) > 1 {
		return "", invalidArgument("status", "give it once")
	}
	s := q.Get("status")
	if s == "" {
		return "", nil
	}
	st, ok := coupon.ParseStatus(s)
	if !ok {
		return "", invalidArgument("status", "must be unused, locked, used or expired")
	}
	return st, nil
}
