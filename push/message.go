package push

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalid marks a push, batch or NSQ message that breaks the message
// schema. DecodeBatch and the encoders wrap it with what was wrong.
var ErrInvalid = errors.New("push: invalid message")

// Item is one reminder inside a push: the template whose grab start is near,
// when the reminder was due and when users may claim the coupon.
type Item struct {
	TemplateID int64     `json:"template_id"` // the coupon template, > 0
	PushAt     time.Time `json:"push_at"`     // when this reminder was due (grab_start - lead)
	GrabStart  time.Time `json:"grab_start"`  // when users may start claiming the coupon
}

// Push is what one user receives: one or more merged reminders. Its ID is
// fixed when the push is taken from its queue, and any redelivery carries the
// same ID (see ID). DueAt is the earliest PushAt among the items.
type Push struct {
	ID     string    `json:"push_id"` // same for every delivery of this push; see ID
	UserID int64     `json:"user_id"` // the user to notify, > 0
	DueAt  time.Time `json:"due_at"`  // the earliest PushAt of Items
	Items  []Item    `json:"items"`   // at least one
}

// Batch is one NSQ message: a unique batch id, the time it was encoded and
// the pushes it carries.
type Batch struct {
	ID        string    `json:"batch_id"`   // random, unique per batch; kept across retries
	EmittedAt time.Time `json:"emitted_at"` // when the batch was encoded (for work prepared ahead, before due)
	Pushes    []Push    `json:"pushes"`     // at least one
}

// NewPush builds the push for one user from the items due together: times
// are cut to whole milliseconds in UTC (the wire precision), items are
// sorted by push time then template, DueAt is the earliest PushAt and the ID
// is ID(userID, keys of the items). The items slice is not modified.
func NewPush(userID int64, items []Item) Push {
	p := Push{UserID: userID, Items: make([]Item, len(items))}
	var small [8]Key
	keys := small[:0]
	if len(items) > len(small) {
		keys = make([]Key, 0, len(items))
	}
	keys = keys[:len(items)]
	for i, it := range items {
		it.PushAt = wireTime(it.PushAt)
		it.GrabStart = wireTime(it.GrabStart)
		p.Items[i] = it
		keys[i] = Key{TemplateID: it.TemplateID, PushAtMs: it.PushAt.UnixMilli()}
	}
	sortItems(p.Items)
	if len(p.Items) > 0 {
		p.DueAt = p.Items[0].PushAt
	}
	p.ID = ID(userID, keys)
	return p
}

// wireTime is t as it travels: UTC, whole milliseconds (cut, not rounded,
// like the encoder).
func wireTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Millisecond)
}

// Validate reports, wrapping ErrInvalid, the first way p breaks the schema:
// an empty ID, a non-positive user or template id, no items, a time that is
// zero or outside years 1-9999, or a DueAt that is not the earliest PushAt
// (compared at millisecond precision, as on the wire).
func (p Push) Validate() error {
	if p.ID == "" {
		return fmt.Errorf("%w: push for user %d: missing push_id", ErrInvalid, p.UserID)
	}
	if p.UserID <= 0 {
		return fmt.Errorf("%w: push %s: user_id %d is not positive", ErrInvalid, p.ID, p.UserID)
	}
	if len(p.Items) == 0 {
		return fmt.Errorf("%w: push %s: no items", ErrInvalid, p.ID)
	}
	if err := checkTime(p.DueAt); err != nil {
		return fmt.Errorf("%w: push %s: due_at: %v", ErrInvalid, p.ID, err)
	}
	earliest := int64(0)
	for i, it := range p.Items {
		if it.TemplateID <= 0 {
			return fmt.Errorf("%w: push %s: item %d: template_id %d is not positive", ErrInvalid, p.ID, i, it.TemplateID)
		}
		if err := checkTime(it.PushAt); err != nil {
			return fmt.Errorf("%w: push %s: item %d: push_at: %v", ErrInvalid, p.ID, i, err)
		}
		if err := checkTime(it.GrabStart); err != nil {
			return fmt.Errorf("%w: push %s: item %d: grab_start: %v", ErrInvalid, p.ID, i, err)
		}
		if ms := wireMillis(it.PushAt); i == 0 || ms < earliest {
			earliest = ms
		}
	}
	if due := wireMillis(p.DueAt); due != earliest {
		return fmt.Errorf("%w: push %s: due_at %s is not the earliest push_at %s", ErrInvalid, p.ID,
			formatTime(p.DueAt), formatTime(time.UnixMilli(earliest)))
	}
	return nil
}

// wireMillis is t's wire value in milliseconds since the Unix epoch
// (UnixMilli floors, as the encoder cuts).
func wireMillis(t time.Time) int64 { return t.UnixMilli() }

// Bounds of the times the wire format carries, in Unix seconds: years
// 1-9999 (RFC 3339's four-digit years, without year 0).
var (
	minWireSec = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	maxWireSec = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).Unix() - 1
)

// checkTime accepts the times the wire format can carry.
func checkTime(t time.Time) error {
	if t.IsZero() {
		return errors.New("missing or zero time")
	}
	if s := t.Unix(); s < minWireSec || s > maxWireSec {
		return fmt.Errorf("year %d outside 1-9999", t.UTC().Year())
	}
	return nil
}
