package push

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The encoder is on the scheduler's hot path (200,000 pushes due at one
// millisecond), so it appends bytes directly instead of going through
// reflection. Tests check that encoding/json reads its output back to the
// same values.

// wireTimeLen is the length of a time on the wire: 2026-11-23T09:59:00.012Z.
const wireTimeLen = 24

// AppendBatch appends the wire form of b (one NSQ message body) to dst and
// returns the extended slice. It validates b first: a non-empty valid UTF-8
// batch id, a valid EmittedAt, at least one push and every push valid (see
// Push.Validate); on error dst is returned unchanged with an error wrapping
// ErrInvalid. Times are written in UTC with milliseconds, cut not rounded.
func AppendBatch(dst []byte, b Batch) ([]byte, error) {
	if b.ID == "" || !utf8.ValidString(b.ID) {
		return dst, fmt.Errorf("%w: batch id %q is empty or not UTF-8", ErrInvalid, b.ID)
	}
	if err := checkTime(b.EmittedAt); err != nil {
		return dst, fmt.Errorf("%w: batch %s: emitted_at: %v", ErrInvalid, b.ID, err)
	}
	if len(b.Pushes) == 0 {
		return dst, fmt.Errorf("%w: batch %s: no pushes", ErrInvalid, b.ID)
	}
	for i := range b.Pushes {
		if err := b.Pushes[i].validateForWire(); err != nil {
			return dst, fmt.Errorf("batch %s: push %d: %w", b.ID, i, err)
		}
	}
	var e encoder
	dst = e.batchHead(dst, b.ID, b.EmittedAt)
	for i := range b.Pushes {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = e.push(dst, &b.Pushes[i])
	}
	return batchTail(dst), nil
}

// validateForWire is Validate plus what only the encoder cares about: the
// push id must be valid UTF-8 so that it reads back unchanged.
func (p *Push) validateForWire() error {
	if err := p.Validate(); err != nil {
		return err
	}
	if !utf8.ValidString(p.ID) {
		return fmt.Errorf("%w: push id %q is not valid UTF-8", ErrInvalid, p.ID)
	}
	return nil
}

// encoder appends wire JSON to the buffer its methods are given. It
// remembers the last two times it formatted: in a burst every push has the
// same due and grab times, so most times are copied rather than formatted.
// It holds no pointers, and the buffer stays with the caller (usually on
// its stack), so appends take no GC write barriers.
type encoder struct {
	times [2]formattedTime
	last  int // index in times of the most recent hit or fill
}

// formattedTime is one time's wire form, keyed by Unix milliseconds.
type formattedTime struct {
	ms   int64
	text [wireTimeLen]byte
	set  bool
}

// batchHead appends everything before the first push.
func (e *encoder) batchHead(dst []byte, id string, emittedAt time.Time) []byte {
	dst = append(dst, `{"batch_id":`...)
	dst = appendString(dst, id)
	dst = append(dst, `,"emitted_at":"`...)
	dst = e.time(dst, emittedAt)
	return append(dst, `","pushes":[`...)
}

// batchTailLen is the length of what batchTail appends.
const batchTailLen = 2

// batchTail closes the pushes array and the batch object.
func batchTail(dst []byte) []byte { return append(dst, "]}"...) }

// push appends one push object; p must be valid.
func (e *encoder) push(dst []byte, p *Push) []byte {
	dst = append(dst, `{"push_id":`...)
	dst = appendString(dst, p.ID)
	dst = append(dst, `,"user_id":`...)
	dst = strconv.AppendInt(dst, p.UserID, 10)
	dst = append(dst, `,"due_at":"`...)
	dst = e.time(dst, p.DueAt)
	dst = append(dst, `","items":[`...)
	for i := range p.Items {
		it := &p.Items[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"template_id":`...)
		dst = strconv.AppendInt(dst, it.TemplateID, 10)
		dst = append(dst, `,"push_at":"`...)
		dst = e.time(dst, it.PushAt)
		dst = append(dst, `","grab_start":"`...)
		dst = e.time(dst, it.GrabStart)
		dst = append(dst, `"}`...)
	}
	return append(dst, "]}"...)
}

// time appends t's wire form, from the cache when it holds t's millisecond.
func (e *encoder) time(dst []byte, t time.Time) []byte {
	ms := t.UnixMilli()
	for i := range e.times {
		if c := &e.times[i]; c.set && c.ms == ms {
			e.last = i
			return append(dst, c.text[:]...)
		}
	}
	e.last ^= 1 // replace the entry used least recently
	c := &e.times[e.last]
	appendTime(c.text[:0], t)
	c.ms, c.set = ms, true
	return append(dst, c.text[:]...)
}

// Encoded sizes, for sizing buffers: the batch envelope with a 32-byte
// batch id, and the parts of a push without its id and numbers.
const (
	batchEnvelopeLen = len(`{"batch_id":"","emitted_at":"","pushes":[]}`) + 32 + wireTimeLen
	pushFixedLen     = len(`{"push_id":"","user_id":,"due_at":"","items":[]},`) + wireTimeLen
	itemFixedLen     = len(`{"template_id":,"push_at":"","grab_start":""},`) + 2*wireTimeLen
)

// pushLen is the encoded size of p (and its comma) when its id needs no
// escapes; the encoder grows its buffer if it does.
func pushLen(p *Push) int {
	n := pushFixedLen + len(p.ID) + digits(p.UserID) - 1 // no comma before the first item
	for i := range p.Items {
		n += itemFixedLen + digits(p.Items[i].TemplateID)
	}
	return n
}

// digits is the number of decimal digits of v > 0.
func digits(v int64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

// appendTime writes t as 2006-01-02T15:04:05.000Z in UTC, cutting (not
// rounding) to milliseconds: the same bytes as time.AppendFormat with that
// layout, several times faster. t must lie within years 1-9999.
func appendTime(dst []byte, t time.Time) []byte {
	ms := t.UnixMilli()
	days := ms / msPerDay
	rem := ms - days*msPerDay
	if rem < 0 { // floor division: times before 1970
		days--
		rem += msPerDay
	}
	y, mo, d := civil(days)
	h, mi, s, milli := rem/3_600_000, rem/60_000%60, rem/1000%60, rem%1000
	return append(dst,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+mo/10), byte('0'+mo%10), '-',
		byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':',
		byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), '.',
		byte('0'+milli/100), byte('0'+milli/10%10), byte('0'+milli%10), 'Z')
}

const msPerDay = 86_400_000

// civil converts days since 1970-01-01 to a proleptic Gregorian date, for
// years 1-9999 (Howard Hinnant's days_from_civil inverse, shifted so that
// every intermediate value is non-negative).
func civil(days int64) (year, month, day int64) {
	z := days + 719_468 + 146_097*4 // days since 0000-03-01, plus 1600 years
	era := z / 146_097
	doe := z - era*146_097                                   // day of era [0, 146096]
	yoe := (doe - doe/1460 + doe/36_524 - doe/146_096) / 365 // year of era [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)                 // day of year from March 1 [0, 365]
	mp := (5*doy + 2) / 153                                  // month from March [0, 11]
	day = doy - (153*mp+2)/5 + 1
	month = mp + 3
	if month > 12 {
		month -= 12
	}
	year = yoe + era*400 - 1600
	if month <= 2 {
		year++
	}
	return year, month, day
}

// formatTime is appendTime as a string, for error messages.
func formatTime(t time.Time) string { return string(appendTime(nil, t)) }

// parseWireTime parses exactly the form appendTime writes and nothing else:
// 24 bytes, UTC `Z`, three fractional digits, a real calendar date and
// clock time (no leap second).
func parseWireTime(v []byte) (time.Time, error) {
	if len(v) != wireTimeLen {
		return time.Time{}, fmt.Errorf("time %q is not of the form 2006-01-02T15:04:05.000Z", v)
	}
	var n [7]int // year, month, day, hour, minute, second, millisecond
	fields := [7][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}, {20, 23}}
	for i, f := range fields {
		for j := f[0]; j < f[1]; j++ {
			c := v[j]
			if c < '0' || c > '9' {
				return time.Time{}, fmt.Errorf("time %q is not of the form 2006-01-02T15:04:05.000Z", v)
			}
			n[i] = n[i]*10 + int(c-'0')
		}
	}
	if v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' || v[19] != '.' || v[23] != 'Z' {
		return time.Time{}, fmt.Errorf("time %q is not of the form 2006-01-02T15:04:05.000Z", v)
	}
	t := time.Date(n[0], time.Month(n[1]), n[2], n[3], n[4], n[5], n[6]*int(time.Millisecond), time.UTC)
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	if y != n[0] || int(mo) != n[1] || d != n[2] || h != n[3] || mi != n[4] || sec != n[5] {
		return time.Time{}, fmt.Errorf("time %q is not a valid date and time", v)
	}
	return t, nil
}

// appendString writes s as a JSON string the way encoding/json does
// (invalid UTF-8 becomes U+FFFD; <, >, & and U+2028/U+2029 are escaped).
// Push and batch ids are hex in practice, so the fast path is one copy.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	i := 0
	for i < len(s) && plainByte[s[i]] {
		i++
	}
	if i == len(s) {
		dst = append(dst, s...)
		return append(dst, '"')
	}
	start := 0
	for i < len(s) {
		c := s[i]
		if plainByte[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// plainByte marks the bytes a JSON string carries as they are: printable
// ASCII except ", \\ and the HTML characters encoding/json escapes.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// sortItems orders items by push time, then template id, then grab start,
// so the same items always encode the same way.
func sortItems(items []Item) {
	slices.SortFunc(items, func(a, b Item) int {
		if c := a.PushAt.Compare(b.PushAt); c != 0 {
			return c
		}
		if c := cmp.Compare(a.TemplateID, b.TemplateID); c != 0 {
			return c
		}
		return a.GrabStart.Compare(b.GrabStart)
	})
}
