package queue

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Push is a user's reminders taken from a queue together. It is fixed when
// taken: a redelivery after a crash carries exactly these items.
type Push struct {
	UserID int64
	Items  []Item // ordered by push time, then template id
	raw    string // the form stored in Redis: "user|tid:ms,tid:ms"
}

// Item is one reminder inside a Push.
type Item struct {
	TemplateID int64
	PushAt     time.Time
}

// DueAt is the earliest push time among p's items.
func (p Push) DueAt() time.Time { return p.Items[0].PushAt }

// String is the stored form of p.
func (p Push) String() string { return p.raw }

// ParsePush decodes a push in its stored form "user|tid:ms,tid:ms".
func ParsePush(s string) (Push, error) {
	user, rest, ok := strings.Cut(s, "|")
	if !ok || rest == "" {
		return Push{}, fmt.Errorf("%w: %q", errBadPush, s)
	}
	uid, err := strconv.ParseInt(user, 10, 64)
	if err != nil || uid <= 0 {
		return Push{}, fmt.Errorf("%w: user in %q", errBadPush, s)
	}
	p := Push{UserID: uid, raw: s, Items: make([]Item, 0, strings.Count(rest, ",")+1)}
	for rest != "" {
		var it string
		it, rest, _ = strings.Cut(rest, ",")
		tid, ms, ok := strings.Cut(it, ":")
		if !ok {
			return Push{}, fmt.Errorf("%w: item %q", errBadPush, it)
		}
		t, err1 := strconv.ParseInt(tid, 10, 64)
		m, err2 := strconv.ParseInt(ms, 10, 64)
		if err1 != nil || err2 != nil || t <= 0 {
			return Push{}, fmt.Errorf("%w: item %q", errBadPush, it)
		}
		p.Items = append(p.Items, Item{TemplateID: t, PushAt: time.UnixMilli(m)})
	}
	return p, nil
}
