package console

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"couponpush/trace"
)

// auditShown is how many audit entries the page lists.
const auditShown = 50

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers the API's error shape.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// page renders one of the embedded HTML templates.
func (c *Console) page(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := c.pages.ExecuteTemplate(&b, name, data); err != nil {
		c.log.Error("console page", "page", name, "err", err)
		http.Error(w, "console page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// index is the console page; its script polls the api routes.
func (c *Console) index(w http.ResponseWriter, r *http.Request) {
	csrf := ""
	if s := whoOf(r).session; s != nil {
		csrf = s.csrf
	}
	c.page(w, http.StatusOK, "index.html", map[string]any{"Path": c.cfg.Path, "CSRF": csrf, "Operator": whoOf(r).operator})
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, c.buildOverview(r.Context(), whoOf(r).operator))
}

// userJSON is GET api/user/{user_id}.
type userJSON struct {
	UserID    int64          `json:"user_id"`
	Layout    string         `json:"layout"`
	Queues    []int          `json:"queues"`
	InTransit bool           `json:"in_transit"`
	Reminders []reminderJSON `json:"reminders"`
}

type reminderJSON struct {
	TemplateID int64       `json:"template_id"`
	Status     string      `json:"status"`
	PushAt     string      `json:"push_at"`
	Version    int64       `json:"version"`
	PushID     string      `json:"push_id"`
	SentAt     string      `json:"sent_at"`
	Redis      []entryJSON `json:"redis"`
	Note       string      `json:"note"`
}

type entryJSON struct {
	Queue     int    `json:"queue"`
	State     string `json:"state"`
	Version   int64  `json:"version"`
	PushAt    string `json:"push_at"`
	InTransit bool   `json:"in_transit"`
}

func (c *Console) user(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("user_id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, "bad_request", "user_id must be a positive 64-bit integer")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.EngineTimeout)
	defer cancel()
	u, err := c.deps.Tracer.Trace(ctx, id)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, newUserJSON(u))
}

func newUserJSON(u trace.User) userJSON {
	out := userJSON{UserID: u.UserID, Layout: u.Layout.Layout.String(), Queues: u.Queues, InTransit: u.InTransit, Reminders: []reminderJSON{}}
	if !u.Recorded {
		out.Layout = "none recorded; " + strconv.Itoa(u.Layout.To) + " queues assumed"
	}
	for _, r := range u.Reminders {
		j := reminderJSON{TemplateID: r.TemplateID, Status: r.Status, PushAt: stamp(r.PushAt), Version: r.Version,
			PushID: r.PushID, SentAt: stamp(r.SentAt), Redis: []entryJSON{}, Note: r.Note}
		for _, e := range r.Redis {
			j.Redis = append(j.Redis, entryJSON{Queue: e.Queue, State: e.State.String(), Version: e.Version, PushAt: stamp(e.PushAt), InTransit: e.InTransit})
		}
		out.Reminders = append(out.Reminders, j)
	}
	return out
}

// auditJSON is one entry of GET api/audit.
type auditJSON struct {
	ID       int64  `json:"id"`
	At       string `json:"at"`
	Operator string `json:"operator"`
	Action   string `json:"action"`
	Detail   string `json:"detail"`
	Result   string `json:"result"`
	Message  string `json:"message"`
}

func (c *Console) audit(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.EngineTimeout)
	defer cancel()
	log, err := c.deps.Store.AuditLog(ctx, auditShown)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	out := make([]auditJSON, 0, len(log))
	for _, a := range log {
		out = append(out, auditJSON{ID: a.ID, At: stamp(a.At), Operator: a.Operator, Action: a.Action, Detail: a.Detail, Result: a.Result, Message: a.Message})
	}
	writeJSON(w, http.StatusOK, map[string]any{"audit": out})
}
