package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"couponpush/cluster"
)

// Actions an operator may take.
const (
	ActionPause  = "pause"
	ActionResume = "resume"
	ActionSetN   = "set_queue_count"
	ActionReplay = "replay_dead_letters"
)

// maxPending caps the prepared actions waiting for a confirm.
const maxPending = 64

// maxActionBody bounds an action's request body.
const maxActionBody = 1024

// prepared is an action waiting for its confirm.
type prepared struct {
	operator string
	action   string
	detail   string
	summary  string
	expires  time.Time
	run      func(ctx context.Context) (string, error)
}

// confirms holds the prepared actions.
type confirms struct {
	mu   sync.Mutex
	now  func() time.Time
	byID map[string]*prepared
}

func newConfirms(now func() time.Time) *confirms {
	return &confirms{now: now, byID: map[string]*prepared{}}
}

func (cs *confirms) add(p *prepared) string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	now := cs.now()
	for id, x := range cs.byID {
		if now.After(x.expires) {
			delete(cs.byID, id)
		}
	}
	for len(cs.byID) >= maxPending { // drop the one nearest expiry
		var first string
		for id, x := range cs.byID {
			if first == "" || x.expires.Before(cs.byID[first].expires) {
				first = id
			}
		}
		delete(cs.byID, first)
	}
	p.expires = now.Add(confirmTTL)
	id := randomID()[:32]
	cs.byID[id] = p
	return id
}

// take removes and returns the live action id names, if operator prepared
// it.
func (cs *confirms) take(id, operator string) (*prepared, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	p, ok := cs.byID[id]
	if !ok || p.operator != operator {
		return nil, false
	}
	delete(cs.byID, id)
	return p, !cs.now().After(p.expires)
}

// actionRequest is the body of POST api/actions.
type actionRequest struct {
	Action string `json:"action"`
	Count  int    `json:"count,omitempty"` // set_queue_count: the new N
}

// prepare checks an action and says what it will do; nothing changes
// until its confirm.
func (c *Console) prepare(w http.ResponseWriter, r *http.Request) {
	var req actionRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxActionBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "body must be {\"action\": ..., \"count\": N}: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.EngineTimeout)
	defer cancel()
	p, err := c.plan(ctx, req)
	if err != nil {
		status := http.StatusBadRequest
		if !errors.As(err, new(badAction)) {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, "bad_request", err.Error())
		return
	}
	p.operator = whoOf(r).operator
	id := c.pending.add(p)
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "action": p.action, "detail": p.detail, "summary": p.summary})
}

// badAction is an action the operator asked wrongly.
type badAction struct{ msg string }

func (e badAction) Error() string { return e.msg }

// plan turns a request into a prepared action.
func (c *Console) plan(ctx context.Context, req actionRequest) (*prepared, error) {
	q, cl := c.deps.Queues, c.deps.Cluster
	if req.Action != ActionSetN && req.Count != 0 {
		return nil, badAction{"count is only for " + ActionSetN}
	}
	switch req.Action {
	case ActionPause:
		return &prepared{action: req.Action, detail: "prefix " + c.cfg.RedisPrefix,
			summary: fmt.Sprintf("Pause: every worker of prefix %q stops emitting pushes within a tick. Subscriptions and cancels go on; nothing is lost.", c.cfg.RedisPrefix),
			run: func(ctx context.Context) (string, error) {
				if err := q.Pause(ctx); err != nil {
					return "", err
				}
				return "paused", nil
			}}, nil
	case ActionResume:
		return &prepared{action: req.Action, detail: "prefix " + c.cfg.RedisPrefix,
			summary: fmt.Sprintf("Resume: the workers of prefix %q emit again; the backlog goes out oldest first.", c.cfg.RedisPrefix),
			run: func(ctx context.Context) (string, error) {
				if err := q.Resume(ctx); err != nil {
					return "", err
				}
				return "resumed", nil
			}}, nil
	case ActionSetN:
		if _, err := cluster.ParseQueueCount([]byte(fmt.Sprint(req.Count))); err != nil {
			return nil, badAction{err.Error()}
		}
		old, idx, found, err := cl.QueueCount(ctx)
		if err != nil && !errors.Is(err, cluster.ErrBadQueueCount) {
			return nil, err
		}
		from := "absent"
		switch {
		case err != nil:
			from = "bad value"
		case found:
			from = fmt.Sprint(old)
		}
		if found && err == nil && old == req.Count {
			return nil, badAction{fmt.Sprintf("N is already %d", old)}
		}
		m := req.Count
		return &prepared{action: req.Action, detail: fmt.Sprintf("N %s -> %d", from, m),
			summary: fmt.Sprintf("Change N (%s) from %s to %d: every worker follows within seconds and users move to their new queues while pushes go on.", cl.QueueCountKey(), from, m),
			run: func(ctx context.Context) (string, error) {
				ok, err := cl.SetQueueCount(ctx, m, idx)
				if err != nil {
					return "", err
				}
				if !ok {
					return "", errors.New("the queue count changed since this was prepared; nothing written, look again")
				}
				return fmt.Sprintf("N set to %d", m), nil
			}}, nil
	case ActionReplay:
		st, found, err := q.LayoutStatus(ctx)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, badAction{"no layout is recorded in Redis yet: no queues to replay"}
		}
		span := st.Span
		return &prepared{action: req.Action, detail: fmt.Sprintf("queues 0-%d", span-1),
			summary: fmt.Sprintf("Replay dead letters: every push in the dead-letter sets of queues 0-%d goes back for publishing with its push id. Do it once the cause is fixed.", span-1),
			run: func(ctx context.Context) (string, error) {
				total := 0
				for i := range span {
					n, err := q.Replay(ctx, i, nil)
					total += n
					if err != nil {
						return fmt.Sprintf("%d replayed before queue %d failed", total, i), err
					}
				}
				return fmt.Sprintf("%d pushes replayed", total), nil
			}}, nil
	}
	return nil, badAction{fmt.Sprintf("unknown action %q (want %s, %s, %s or %s)", req.Action, ActionPause, ActionResume, ActionSetN, ActionReplay)}
}

// confirm runs a prepared action, recorded in the audit log before and
// after.
func (c *Console) confirm(w http.ResponseWriter, r *http.Request) {
	op := whoOf(r).operator
	p, ok := c.pending.take(r.PathValue("id"), op)
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no such action waiting for a confirm (expired, done, or another operator's): prepare it again")
		return
	}
	// Not the request's context alone: a browser that goes away must not
	// leave an action half-recorded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), c.cfg.EngineTimeout)
	defer cancel()
	id, err := c.deps.Store.BeginAudit(ctx, Audit{At: c.cfg.Now(), Operator: op, Action: p.action, Detail: p.detail, Result: "started"})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the audit log cannot be written, so nothing was done: "+err.Error())
		return
	}
	msg, runErr := p.run(ctx)
	result := "ok"
	if runErr != nil {
		result = "failed"
		if msg != "" {
			msg += ": "
		}
		msg += runErr.Error()
	}
	c.log.Info("console action", "operator", op, "action", p.action, "detail", p.detail, "result", result, "message", msg)
	if err := c.deps.Store.SettleAudit(ctx, id, result, msg); err != nil {
		c.log.Error("console audit settle", "audit_id", id, "err", err)
		msg += " (the audit entry still reads started: " + err.Error() + ")"
	}
	status := http.StatusOK
	if runErr != nil {
		status = http.StatusBadGateway
	}
	writeJSON(w, status, map[string]any{"audit_id": id, "action": p.action, "result": result, "message": msg})
}

// cancelAction drops a prepared action.
func (c *Console) cancelAction(w http.ResponseWriter, r *http.Request) {
	c.pending.take(r.PathValue("id"), whoOf(r).operator)
	w.WriteHeader(http.StatusNoContent)
}
