package httpapi

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"

	"couponpush/abuse"
	"couponpush/subscription"
)

func (a *api) createTemplate(w http.ResponseWriter, r *http.Request) {
	body, e := readBody(w, r, a.cfg.MaxBodyBytes)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	d, e := decodeTemplate(body)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	t, err := a.cfg.Templates.Create(r.Context(), d)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.cfg.Coupons != nil {
		t = a.prepare(r, t)
	}
	w.Header().Set("Location", "/v1/templates/"+itoa(t.ID))
	writeJSON(w, http.StatusCreated, templateOut(t))
}

func (a *api) getTemplate(w http.ResponseWriter, r *http.Request) {
	id, e := pathID(r, "template_id")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	get := a.cfg.Templates.Get
	if a.cfg.Coupons != nil {
		get = a.cfg.Coupons.Template
	}
	t, err := get(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, templateOut(t))
}

func (a *api) updateTemplate(w http.ResponseWriter, r *http.Request) {
	id, e := pathID(r, "template_id")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	body, e := readBody(w, r, a.cfg.MaxBodyBytes)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	p, e := decodeTemplatePatch(body)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	t, err := a.cfg.Templates.Update(r.Context(), id, p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.cfg.Coupons != nil {
		// The stock figures live in Redis (a PATCH cannot change stock):
		// answer them as GET does.
		live, err := a.cfg.Coupons.Template(r.Context(), id)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		t.Remaining, t.Issued = live.Remaining, live.Issued
	}
	writeJSON(w, http.StatusOK, templateOut(t))
}

// userTemplate parses {user_id}/{template_id}.
func userTemplate(r *http.Request) (int64, int64, *apiError) {
	user, e := pathID(r, "user_id")
	if e != nil {
		return 0, 0, e
	}
	template, e := pathID(r, "template_id")
	if e != nil {
		return 0, 0, e
	}
	return user, template, nil
}

func (a *api) subscribe(w http.ResponseWriter, r *http.Request) {
	user, template, e := userTemplate(r)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if e := a.authorizeUser(r, user); e != nil {
		writeAPIError(w, e)
		return
	}
	body, e := readBody(w, r, a.cfg.MaxBodyBytes)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	lead, e := decodeSubscribe(body)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if e := a.admit(r, abuse.Subscribe, user); e != nil {
		writeAPIError(w, e)
		return
	}
	sub, created, err := a.cfg.Subscriptions.Subscribe(r.Context(), user, template, lead)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, subscriptionOut(sub))
}

func (a *api) cancel(w http.ResponseWriter, r *http.Request) {
	user, template, e := userTemplate(r)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if e := a.authorizeUser(r, user); e != nil {
		writeAPIError(w, e)
		return
	}
	if e := a.admit(r, abuse.Subscribe, user); e != nil {
		writeAPIError(w, e)
		return
	}
	if err := a.cfg.Subscriptions.Cancel(r.Context(), user, template); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	user, e := pathID(r, "user_id")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if e := a.authorizeUser(r, user); e != nil {
		writeAPIError(w, e)
		return
	}
	page, e := pageQuery(r)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	subs, err := a.cfg.Subscriptions.List(r.Context(), user, page)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := subscriptionsJSON{Subscriptions: each(subs, subscriptionOut)}
	if limit := page.Limit; len(subs) > 0 && len(subs) == cmp.Or(limit, subscription.MaxListLimit) {
		out.NextAfter = subs[len(subs)-1].TemplateID
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type readyBody struct {
	Status string            `json:"status,omitempty"`
	Error  *errorJSON        `json:"error,omitempty"`
	Checks map[string]string `json:"checks"`
}

// readyz runs every check at once, each within ReadyTimeout, and names the
// ones that failed; their errors are logged, not shown.
func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		checks = map[string]string{}
		failed []string
	)
	for name, check := range a.cfg.Ready {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(r.Context(), a.cfg.ReadyTimeout)
			defer cancel()
			err := check(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				checks[name] = "down"
				failed = append(failed, name)
				a.log.WarnContext(r.Context(), "readiness check failed", "check", name, "err", err)
				return
			}
			checks[name] = "ok"
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		slices.Sort(failed)
		writeJSON(w, http.StatusServiceUnavailable, readyBody{Checks: checks, Error: &errorJSON{
			Code: "unavailable", Message: "not ready: " + strings.Join(failed, ", ") + " unreachable"}})
		return
	}
	writeJSON(w, http.StatusOK, readyBody{Status: "ready", Checks: checks})
}

func (a *api) metrics(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Metrics == nil {
		writeError(w, http.StatusNotFound, "not_found", "metrics are not enabled")
		return
	}
	a.cfg.Metrics.ServeHTTP(w, r)
}
