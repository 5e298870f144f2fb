package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// cookieName is the session cookie.
const cookieName = "couponpush_console"

// maxTokenBytes bounds the token a login form may send.
const maxTokenBytes = 4096

// Fingerprint names an operator token without revealing it: "op:" and the
// first 12 hex digits of its SHA-256. It is what sessions keep and the
// audit log records.
func Fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "op:" + hex.EncodeToString(sum[:6])
}

// session is one login.
type session struct {
	operator string // Fingerprint of the token
	csrf     string
	expires  time.Time
}

// sessions are the logins, in memory: a session belongs to the worker that
// made it, and ends with it.
type sessions struct {
	mu   sync.Mutex
	ttl  time.Duration
	max  int
	now  func() time.Time
	byID map[string]*session
}

func newSessions(ttl time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, max: max, now: now, byID: map[string]*session{}}
}

// randomID is 32 random bytes in hex.
func randomID() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// create makes a session for operator and returns its id. Beyond max, the
// expired sessions go, then the one nearest expiry.
func (s *sessions) create(operator string) (string, *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.byID) >= s.max {
		var oldest string
		for id, x := range s.byID {
			if now.After(x.expires) {
				delete(s.byID, id)
				continue
			}
			if oldest == "" || x.expires.Before(s.byID[oldest].expires) {
				oldest = id
			}
		}
		if len(s.byID) >= s.max && oldest != "" {
			delete(s.byID, oldest)
		}
	}
	id := randomID()
	x := &session{operator: operator, csrf: randomID(), expires: now.Add(s.ttl)}
	s.byID[id] = x
	return id, x
}

// get returns the live session id names.
func (s *sessions) get(id string) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.byID[id]
	if !ok {
		return nil, false
	}
	if s.now().After(x.expires) {
		delete(s.byID, id)
		return nil, false
	}
	return x, true
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// who is the operator behind a request: its fingerprint, and its session
// when it came with a cookie (nil for a bearer token).
type who struct {
	operator string
	session  *session
	id       string
}

type whoKey struct{}

func whoOf(r *http.Request) who { w, _ := r.Context().Value(whoKey{}).(who); return w }

// operator lets only operators through: a bearer operator token, or a
// session cookie (and, for a POST, its CSRF token and this host's Origin).
// A browser without a session is sent to the login form; anything else
// gets 401.
func (c *Console) operator(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := r.Header.Get("Authorization"); h != "" {
			scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || !c.deps.Operator(strings.TrimSpace(token)) {
				w.Header().Set("WWW-Authenticate", "Bearer")
				writeError(w, http.StatusUnauthorized, "unauthorized", "not an operator token")
				return
			}
			next(w, r.WithContext(context.WithValue(r.Context(), whoKey{}, who{operator: Fingerprint(strings.TrimSpace(token))})))
			return
		}
		ck, err := r.Cookie(cookieName)
		var s *session
		ok := err == nil
		if ok {
			s, ok = c.sessions.get(ck.Value)
		}
		if !ok {
			if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, c.cfg.Path+"api/") {
				http.Redirect(w, r, c.cfg.Path+"login", http.StatusSeeOther)
				return
			}
			writeError(w, http.StatusUnauthorized, "unauthorized", "log in to the console first")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !sameOrigin(r) {
				writeError(w, http.StatusForbidden, "forbidden", "cross-origin request refused")
				return
			}
			got := r.Header.Get("X-CSRF-Token")
			if subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
				writeError(w, http.StatusForbidden, "forbidden", "missing or wrong CSRF token")
				return
			}
		}
		next(w, r.WithContext(context.WithValue(r.Context(), whoKey{}, who{operator: s.operator, session: s, id: ck.Value})))
	})
}

// sameOrigin reports whether r's Origin header, when the browser sent one,
// names the host r was sent to.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true // not a browser, or an old one: the CSRF token still has to match
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// loginForm shows the login form.
func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	c.page(w, http.StatusOK, "login.html", map[string]any{"Path": c.cfg.Path, "Error": ""})
}

// login checks the form's token and, when it is an operator's, sets the
// session cookie and sends the browser to the console.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "forbidden", "cross-origin request refused")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenBytes+256)
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" || len(token) > maxTokenBytes || !c.deps.Operator(token) {
		c.log.Warn("console login refused", "remote", r.RemoteAddr)
		c.page(w, http.StatusUnauthorized, "login.html", map[string]any{"Path": c.cfg.Path, "Error": "That is not an operator token."})
		return
	}
	id, s := c.sessions.create(Fingerprint(token))
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: id, Path: c.cfg.Path, Expires: s.expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.cfg.SecureCookie || r.TLS != nil,
	})
	c.log.Info("console login", "operator", s.operator, "remote", r.RemoteAddr)
	http.Redirect(w, r, c.cfg.Path, http.StatusSeeOther)
}

// logout ends the session.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if id := whoOf(r).id; id != "" {
		c.sessions.drop(id)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: c.cfg.Path, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.cfg.SecureCookie || r.TLS != nil})
	w.WriteHeader(http.StatusNoContent)
}
