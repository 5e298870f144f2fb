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
}

// Item is one reminder inside a Push.
type Item struct {
	TemplateID int64
	PushAt     time.Time
}

// DueAt is the earliest push time among p's items.
func (p Push) DueAt() time.Time { return p.Items[0].PushAt }

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
	p := Push{UserID: uid, Items: make([]Item, 0, strings.Count(rest, ",")+1)}
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

// Chunk is the pushes one pop took, published and acked together. Its
// stored form (the pushes joined by newlines) is its identity in the
// flight and marks sets; a redelivery republishes it unchanged.
type Chunk struct {
	Pushes []Push
	raw    string
}

// String is ch's stored form.
func (ch Chunk) String() string { return ch.raw }

// Parsed reports whether ch holds its pushes. Only a chunk Begin hands
// over with its seal does not: its stored form is all its publish and ack
// need, and Parse decodes it later, off the publish's path.
func (ch Chunk) Parsed() bool { return ch.Pushes != nil || ch.raw == "" }

// Parse returns ch with its pushes: ch itself when Parsed, else its stored
// form decoded.
func (ch Chunk) Parse() (Chunk, error) {
	if ch.Parsed() {
		return ch, nil
	}
	return ParseChunk(ch.raw)
}

// Len is how many pushes ch holds, parsed or not.
func (ch Chunk) Len() int {
	if ch.Parsed() {
		return len(ch.Pushes)
	}
	return strings.Count(ch.raw, "\n") + 1
}

// ParseChunk decodes a chunk in its stored form.
func ParseChunk(s string) (Chunk, error) {
	c := Chunk{raw: s}
	c.Pushes = make([]Push, 0, c.Len())
	for rest := s; rest != ""; {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		p, err := ParsePush(line)
		if err != nil {
			return Chunk{}, err
		}
		c.Pushes = append(c.Pushes, p)
	}
	if len(c.Pushes) == 0 {
		return Chunk{}, fmt.Errorf("%w: empty chunk", errBadPush)
	}
	return c, nil
}
