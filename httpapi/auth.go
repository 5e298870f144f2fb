package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"couponpush/auth"
)

// caller is the kind of caller a route is for (CONTRACT.md "Who may call
// what"). Every route names one; the zero value is none, and New refuses
// a route without one.
type caller uint8

const (
	// anyone: probe routes, no token needed.
	anyone caller = iota + 1
	// users: a user with a token, for their own user id (the handler
	// checks it with authorizeUser), or an operator on behalf of any user.
	users
	// operators: an operator token only.
	operators
)

func (c caller) String() string {
	switch c {
	case anyone:
		return "anyone"
	case users:
		return "users"
	case operators:
		return "operators"
	}
	return fmt.Sprintf("caller(%d)", uint8(c))
}

// adminPrefix starts the operators' own routes; every route under it must
// be for operators.
const adminPrefix = "/v1/admin/"

// checkRoute reports a route table entry New must refuse.
func checkRoute(rt route) error {
	_, path, _ := strings.Cut(rt.pattern, " ")
	switch {
	case rt.caller < anyone || rt.caller > operators:
		return fmt.Errorf("httpapi: route %q names no caller kind", rt.pattern)
	case strings.HasPrefix(path, adminPrefix) && rt.caller != operators:
		return fmt.Errorf("httpapi: route %q is under %s but for %v, not operators", rt.pattern, adminPrefix, rt.caller)
	}
	return nil
}

type callerKey struct{}

// authenticate lets r through to a route for kind, with its caller in the
// context, or answers 401 (no or bad token) or 403 (a user on an
// operators' route) and returns false.
func (a *api) authenticate(w http.ResponseWriter, r *http.Request, kind caller) (*http.Request, bool) {
	if kind == anyone || a.cfg.AuthOff {
		return r, true
	}
	c, err := a.cfg.Auth.Authenticate(r.Header.Get("Authorization"))
	switch {
	case errors.Is(err, auth.ErrNoToken):
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeError(w, http.StatusUnauthorized, "unauthorized", "this route needs a bearer token (Authorization: Bearer <token>)")
		return nil, false
	case err != nil:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
		return nil, false
	case kind == operators && !c.Operator:
		writeAPIError(w, forbidden("this route is for operators"))
		return nil, false
	}
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, c)), true
}

// authorizeUser checks that the request's caller may act for userID: the
// user themself or an operator. Handlers of users' routes call it once
// they know the user (path or body) and before any write.
func (a *api) authorizeUser(r *http.Request, userID int64) *apiError {
	if a.cfg.AuthOff {
		return nil
	}
	c, ok := r.Context().Value(callerKey{}).(auth.Caller)
	switch {
	case !ok: // a handler on a route not for users: refuse rather than guess
		return forbidden("this route does not act for users")
	case c.Operator || c.UserID == userID:
		return nil
	}
	return forbidden(fmt.Sprintf("the token is user %d's; it may not act for user %d", c.UserID, userID))
}

func forbidden(msg string) *apiError {
	return &apiError{status: http.StatusForbidden, code: "forbidden", message: msg}
}
