package httpapi

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"

	"couponpush/subscription"
	"couponpush/template"
)

// apiError is an error answer: status, code and message, and for
// invalid_argument the fields at fault.
type apiError struct {
	status  int
	code    string
	message string
	fields  []fieldJSON
	// retryAfter, if positive, is sent as Retry-After in whole seconds,
	// rounded up.
	retryAfter time.Duration
}

type fieldJSON struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Code    string      `json:"code"`
	Message string      `json:"message"`
	Fields  []fieldJSON `json:"fields,omitempty"`
}

func invalidJSON(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_json", message: msg}
}

func invalidArgument(field, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_argument", message: field + ": " + msg,
		fields: []fieldJSON{{Field: field, Message: msg}}}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeAPIError(w, &apiError{status: status, code: code, message: msg})
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	if ow, ok := w.(*outcomeWriter); ok {
		ow.code = e.code
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((e.retryAfter+time.Second-1)/time.Second), 10))
	}
	writeJSON(w, e.status, errorBody{Error: errorJSON{Code: e.code, Message: e.message, Fields: e.fields}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types are written; this is a bug
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// fail answers a service error: the sentinels callers branch on map to
// their CONTRACT codes; engine failures to 503; anything else to a 500
// whose cause is logged, not shown.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		tve *template.ValidationError
		sve *subscription.ValidationError
	)
	switch {
	case errors.As(err, &tve):
		e := &apiError{status: http.StatusBadRequest, code: "invalid_argument"}
		for i, f := range tve.Fields {
			if i > 0 {
				e.message += "; "
			}
			e.message += f.Field + ": " + f.Message
			e.fields = append(e.fields, fieldJSON(f))
		}
		writeAPIError(w, e)
	case errors.As(err, &sve):
		writeAPIError(w, invalidArgument(sve.Field, sve.Message))
	case errors.Is(err, template.ErrNotFound):
		writeError(w, http.StatusNotFound, "template_not_found", "no such template")
	case errors.Is(err, template.ErrHasSubscribers):
		writeError(w, http.StatusConflict, "has_subscribers",
			"grab_start cannot change once a template has subscribers; create a new template")
	case errors.Is(err, subscription.ErrNotFound):
		writeError(w, http.StatusNotFound, "subscription_not_found", "no such subscription")
	case errors.Is(err, subscription.ErrTooLate):
		writeError(w, http.StatusConflict, "too_late", "the reminder's push time has passed")
	case errors.Is(err, subscription.ErrAlreadySent):
		writeError(w, http.StatusConflict, "already_sent", "the reminder is being published or was sent")
	case errors.Is(err, subscription.ErrTooManyReminders):
		writeError(w, http.StatusConflict, "too_many_reminders", "the user holds as many reminders as allowed; cancel one first")
	case errors.Is(err, subscription.ErrTemplateChanged):
		writeError(w, http.StatusConflict, "template_changed", "the template changed while subscribing; retry")
	case couponError(w, err):
	case unavailable(err):
		a.log.WarnContext(r.Context(), "engine unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		writeUnavailable(w, "a backing service is unavailable; retry later")
	default:
		a.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

// unavailable reports errors that mean an engine is down or too slow, not
// that the request or the code is wrong.
func unavailable(err error) bool {
	var netErr net.Error
	return errors.Is(err, subscription.ErrIndex) ||
		errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) ||
		errors.As(err, &netErr)
}
