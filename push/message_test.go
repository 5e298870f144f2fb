package push

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// grab is the grab start used by the test pushes.
var grab = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// testPush is a one-item push for user due a minute before grab.
func testPush(user, template int64) Push {
	return NewPush(user, []Item{{TemplateID: template, PushAt: grab.Add(-time.Minute), GrabStart: grab}})
}

// testBatch wraps pushes in a batch with a fixed id and time.
func testBatch(pushes ...Push) Batch {
	return Batch{ID: "b1", EmittedAt: grab.Add(-59*time.Second + 12*time.Millisecond), Pushes: pushes}
}

func TestAppendBatchReadsBackWithEncodingJSON(t *testing.T) {
	t.Parallel()
	shanghai := time.FixedZone("CST", 8*3600)
	tests := []struct {
		name  string
		batch Batch
	}{
		{"one push", testBatch(testPush(42, 7))},
		{"several pushes", testBatch(testPush(1, 7), testPush(2, 7), testPush(1<<62, 1<<62))},
		{"merged items", testBatch(NewPush(9, []Item{
			{TemplateID: 3, PushAt: grab.Add(5 * time.Second), GrabStart: grab.Add(65 * time.Second)},
			{TemplateID: 2, PushAt: grab, GrabStart: grab.Add(time.Minute)},
		}))},
		{"ids needing escapes", testBatch(func() Push {
			p := testPush(5, 5)
			p.ID = "a\"b\\c\n\t\x01<>&\u2028é😀"
			return p
		}())},
		{"times off UTC and finer than ms", func() Batch {
			at := time.Date(2026, 11, 23, 17, 59, 0, 123_999_999, shanghai)
			p := NewPush(3, []Item{{TemplateID: 1, PushAt: at, GrabStart: at.Add(time.Minute)}})
			b := testBatch(p)
			b.EmittedAt = at
			return b
		}()},
		{"edge years", testBatch(NewPush(4, []Item{{
			TemplateID: 1,
			PushAt:     time.Date(1, 1, 1, 0, 0, 0, 1e6, time.UTC),
			GrabStart:  time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC),
		}}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := AppendBatch([]byte("prefix"), tt.batch)
			if err != nil {
				t.Fatalf("AppendBatch: %v", err)
			}
			if !strings.HasPrefix(string(out), "prefix") {
				t.Fatalf("AppendBatch dropped dst: %q", out)
			}
			body := out[len("prefix"):]
			if !json.Valid(body) {
				t.Fatalf("not JSON: %s", body)
			}
			want := wireBatchOf(tt.batch)
			var viaJSON Batch
			if err := json.Unmarshal(body, &viaJSON); err != nil {
				t.Fatalf("encoding/json: %v\n%s", err, body)
			}
			assertSameBatch(t, "encoding/json", viaJSON, want)
			decoded, err := DecodeBatch(body)
			if err != nil {
				t.Fatalf("DecodeBatch: %v\n%s", err, body)
			}
			assertSameBatch(t, "DecodeBatch", decoded, want)
		})
	}
}

// wireBatchOf is b as it reads back from the wire: times cut to UTC ms.
func wireBatchOf(b Batch) Batch {
	out := Batch{ID: b.ID, EmittedAt: wireTime(b.EmittedAt)}
	for _, p := range b.Pushes {
		q := Push{ID: p.ID, UserID: p.UserID, DueAt: wireTime(p.DueAt)}
		for _, it := range p.Items {
			q.Items = append(q.Items, Item{TemplateID: it.TemplateID, PushAt: wireTime(it.PushAt), GrabStart: wireTime(it.GrabStart)})
		}
		out.Pushes = append(out.Pushes, q)
	}
	return out
}

// assertSameBatch compares two batches, times by instant.
func assertSameBatch(t *testing.T, what string, got, want Batch) {
	t.Helper()
	norm := func(b Batch) Batch { // same instants, same location, for DeepEqual
		b = wireBatchOf(b)
		return b
	}
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s read back\n%+v\nwant\n%+v", what, g, w)
	}
	if !got.EmittedAt.Equal(want.EmittedAt) {
		t.Fatalf("%s: emitted_at %v, want %v", what, got.EmittedAt, want.EmittedAt)
	}
}

func TestAppendBatchWireForm(t *testing.T) {
	t.Parallel()
	got, err := AppendBatch(nil, testBatch(Push{
		ID: "p1", UserID: 42, DueAt: grab.Add(-time.Minute),
		Items: []Item{{TemplateID: 7, PushAt: grab.Add(-time.Minute), GrabStart: grab}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"batch_id":"b1","emitted_at":"2026-11-23T09:59:01.012Z","pushes":[` +
		`{"push_id":"p1","user_id":42,"due_at":"2026-11-23T09:59:00.000Z","items":[` +
		`{"template_id":7,"push_at":"2026-11-23T09:59:00.000Z","grab_start":"2026-11-23T10:00:00.000Z"}]}]}`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestAppendBatchRejectsInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		batch Batch
		want  string
	}{
		{"empty batch id", Batch{EmittedAt: grab, Pushes: []Push{testPush(1, 1)}}, "batch id"},
		{"batch id not UTF-8", Batch{ID: "\xff", EmittedAt: grab, Pushes: []Push{testPush(1, 1)}}, "batch id"},
		{"zero emitted_at", Batch{ID: "b", Pushes: []Push{testPush(1, 1)}}, "emitted_at"},
		{"no pushes", Batch{ID: "b", EmittedAt: grab}, "no pushes"},
		{"invalid push", testBatch(Push{ID: "p"}), "user_id 0"},
		{"push id not UTF-8", testBatch(func() Push { p := testPush(1, 1); p.ID = "a\xffb"; return p }()), "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := AppendBatch([]byte("x"), tt.batch)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrInvalid mentioning %q", err, tt.want)
			}
			if string(out) != "x" {
				t.Fatalf("dst changed to %q", out)
			}
		})
	}
}

func TestPushValidate(t *testing.T) {
	t.Parallel()
	at := grab.Add(-time.Minute)
	ok := func() Push { return testPush(42, 7) }
	tests := []struct {
		name string
		push func() Push
		want string // "" means valid
	}{
		{"valid", ok, ""},
		{"valid with due_at finer than ms", func() Push { p := ok(); p.DueAt = p.DueAt.Add(999 * time.Microsecond); return p }, ""},
		{"missing id", func() Push { p := ok(); p.ID = ""; return p }, "missing push_id"},
		{"zero user", func() Push { p := ok(); p.UserID = 0; return p }, "user_id 0"},
		{"negative user", func() Push { p := ok(); p.UserID = -1; return p }, "user_id -1"},
		{"no items", func() Push { p := ok(); p.Items = nil; return p }, "no items"},
		{"zero template", func() Push { p := ok(); p.Items[0].TemplateID = 0; return p }, "template_id 0"},
		{"zero due_at", func() Push { p := ok(); p.DueAt = time.Time{}; return p }, "due_at"},
		{"zero push_at", func() Push { p := ok(); p.Items[0].PushAt = time.Time{}; return p }, "push_at"},
		{"zero grab_start", func() Push { p := ok(); p.Items[0].GrabStart = time.Time{}; return p }, "grab_start"},
		{"year 10000", func() Push { p := ok(); p.Items[0].GrabStart = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC); return p }, "year 10000"},
		{"due_at later than earliest", func() Push { p := ok(); p.DueAt = at.Add(time.Millisecond); return p }, "not the earliest"},
		{"due_at earlier than earliest", func() Push { p := ok(); p.DueAt = at.Add(-time.Second); return p }, "not the earliest"},
		{"due_at not the minimum of two", func() Push {
			p := NewPush(1, []Item{{TemplateID: 1, PushAt: at, GrabStart: grab}, {TemplateID: 2, PushAt: at.Add(time.Second), GrabStart: grab}})
			p.DueAt = at.Add(time.Second)
			return p
		}, "not the earliest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.push().Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}

func TestNewPush(t *testing.T) {
	t.Parallel()
	loc := time.FixedZone("X", -3*3600)
	late := Item{TemplateID: 1, PushAt: grab.Add(2*time.Second + 500*time.Microsecond).In(loc), GrabStart: grab.Add(time.Minute).In(loc)}
	early := Item{TemplateID: 2, PushAt: grab, GrabStart: grab.Add(time.Minute)}
	in := []Item{late, early}
	p := NewPush(77, in)
	if p.UserID != 77 {
		t.Errorf("UserID %d", p.UserID)
	}
	if !p.DueAt.Equal(grab) || p.DueAt.Location() != time.UTC {
		t.Errorf("DueAt %v, want %v in UTC", p.DueAt, grab)
	}
	if len(p.Items) != 2 || p.Items[0].TemplateID != 2 || p.Items[1].TemplateID != 1 {
		t.Fatalf("items not sorted by push time: %+v", p.Items)
	}
	if got := p.Items[1].PushAt; !got.Equal(grab.Add(2*time.Second)) || got.Location() != time.UTC {
		t.Errorf("PushAt %v not cut to UTC ms", got)
	}
	if in[0].TemplateID != 1 || in[0].PushAt.Location() != loc {
		t.Errorf("NewPush modified its input: %+v", in)
	}
	wantID := ID(77, []Key{{2, grab.UnixMilli()}, {1, grab.Add(2 * time.Second).UnixMilli()}})
	if p.ID != wantID {
		t.Errorf("ID %s, want %s", p.ID, wantID)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("NewPush made an invalid push: %v", err)
	}
}

func TestAppendTimeMatchesTimeFormat(t *testing.T) {
	t.Parallel()
	const layout = "2006-01-02T15:04:05.000Z"
	r := rand.New(rand.NewPCG(1, 2))
	lo := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	hi := time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC).UnixMicro()
	cases := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2024, 2, 29, 12, 0, 0, 999_999, time.FixedZone("Y", 5*3600+1800)),
		grab,
	}
	for range 10000 {
		at := time.UnixMicro(lo + r.Int64N(hi-lo)).Add(time.Duration(r.IntN(1000)))
		cases = append(cases, at.In(time.FixedZone("Z", r.IntN(24*3600)-12*3600)))
	}
	for _, c := range cases {
		got := string(appendTime(nil, c))
		if want := c.UTC().Format(layout); got != want {
			t.Fatalf("appendTime(%v) = %s, want %s", c, got, want)
		}
		back, err := parseWireTime([]byte(got))
		if err != nil || !back.Equal(wireTime(c)) {
			t.Fatalf("parseWireTime(%s) = %v, %v; want %v", got, back, err, wireTime(c))
		}
	}
}

func TestParseWireTimeRejects(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"no fraction", "2026-11-23T09:59:00Z"},
		{"two fraction digits", "2026-11-23T09:59:00.01Z"},
		{"four fraction digits", "2026-11-23T09:59:00.0123Z"},
		{"offset", "2026-11-23T09:59:00.012+00:00"},
		{"lower z", "2026-11-23T09:59:00.012z"},
		{"space separator", "2026-11-23 09:59:00.012Z"},
		{"single digit hour", "2026-11-23T9:59:00.012ZZ"},
		{"month 13", "2026-13-23T09:59:00.012Z"},
		{"february 30", "2026-02-30T09:59:00.012Z"},
		{"hour 24", "2026-11-23T24:00:00.000Z"},
		{"leap second", "2026-12-31T23:59:60.000Z"},
		{"sign in year", "+026-11-23T09:59:00.012Z"},
		{"non digit", "2026-11-2xT09:59:00.012Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got, err := parseWireTime([]byte(tt.in)); err == nil {
				t.Fatalf("parseWireTime(%q) = %v, want error", tt.in, got)
			}
		})
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"hex", "0123456789abcdef0123456789abcdef"},
		{"quotes and backslash", `a"b\c`},
		{"control characters", "\x00\x01\x1f\n\r\t\b\f"},
		{"html", "<script>&amp;</script>"},
		{"unicode", "é中😀"},
		{"line separators", "a\u2028b\u2029c"},
		{"invalid UTF-8", "a\xffb\xc3"},
		{"delete character", "\x7f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := appendString(nil, tt.in); string(got) != string(want) {
				t.Fatalf("appendString(%q) = %s, want %s", tt.in, got, want)
			}
		})
	}
}

// validJSON is a well-formed message of the contract's example shape.
const validJSON = `{"batch_id":"b1","emitted_at":"2026-11-23T09:59:00.012Z","pushes":[` +
	`{"push_id":"p1","user_id":42,"due_at":"2026-11-23T09:59:00.000Z","items":[` +
	`{"template_id":7,"push_at":"2026-11-23T09:59:00.000Z","grab_start":"2026-11-23T10:00:00.000Z"},` +
	`{"template_id":8,"push_at":"2026-11-23T09:59:05.000Z","grab_start":"2026-11-23T10:00:05.000Z"}]}]}`

func TestDecodeBatchAccepts(t *testing.T) {
	t.Parallel()
	want := Batch{ID: "b1", EmittedAt: time.Date(2026, 11, 23, 9, 59, 0, 12e6, time.UTC), Pushes: []Push{{
		ID: "p1", UserID: 42, DueAt: grab.Add(-time.Minute),
		Items: []Item{
			{TemplateID: 7, PushAt: grab.Add(-time.Minute), GrabStart: grab},
			{TemplateID: 8, PushAt: grab.Add(-55 * time.Second), GrabStart: grab.Add(5 * time.Second)},
		},
	}}}
	tests := []struct{ name, in string }{
		{"as encoded", validJSON},
		{"whitespace everywhere", strings.NewReplacer("{", " {\n\t", "}", "\r\n} ", `":`, `" : `, ",", " ,\n", "[", "[ ", "]", " ]").Replace(validJSON)},
		{"keys in another order", `{"pushes":[{"items":[` +
			`{"grab_start":"2026-11-23T10:00:00.000Z","push_at":"2026-11-23T09:59:00.000Z","template_id":7},` +
			`{"push_at":"2026-11-23T09:59:05.000Z","template_id":8,"grab_start":"2026-11-23T10:00:05.000Z"}],` +
			`"due_at":"2026-11-23T09:59:00.000Z","user_id":42,"push_id":"p1"}],"emitted_at":"2026-11-23T09:59:00.012Z","batch_id":"b1"}`},
		{"escapes in strings", strings.NewReplacer(`"p1"`, `"p\u0031"`, `"b1"`, `"\u0062\/1"`, `"emitted_at":"2026`, `"emitted_at":"\u0032026`).Replace(validJSON)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := DecodeBatch([]byte(tt.in))
			if err != nil {
				t.Fatalf("%v\n%s", err, tt.in)
			}
			w := want
			if tt.name == "escapes in strings" {
				w.ID = "b/1"
			}
			if !reflect.DeepEqual(b, w) {
				t.Fatalf("got %+v\nwant %+v", b, w)
			}
		})
	}
	t.Run("unicode ids", func(t *testing.T) {
		t.Parallel()
		in := strings.Replace(validJSON, `"p1"`, `"é\u00e9\ud83d\ude00😀\u2028"`, 1)
		b, err := DecodeBatch([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := b.Pushes[0].ID, "éé😀😀\u2028"; got != want {
			t.Fatalf("push id %q, want %q", got, want)
		}
	})
}

func TestDecodeBatchRejects(t *testing.T) {
	t.Parallel()
	// edit replaces the first occurrence of old in validJSON.
	edit := func(old, new string) string {
		if !strings.Contains(validJSON, old) {
			panic("test edit does not apply: " + old)
		}
		return strings.Replace(validJSON, old, new, 1)
	}
	tests := []struct{ name, in, want string }{
		{"empty", "", "batch: want '{', got end of input"},
		{"not JSON", "hello", "batch: want '{', got 'h' at byte 0"},
		{"array", "[]", `batch: want '{', got '['`},
		{"null", "null", `batch: want '{', got null`},
		{"truncated", validJSON[:len(validJSON)-3], "got end of input"},
		{"two objects", validJSON + validJSON, "data after the batch object"},
		{"trailing garbage", validJSON + "x", "data after the batch object"},
		{"unknown top-level key", edit(`"batch_id"`, `"extra":1,"batch_id"`), `batch: unknown key "extra"`},
		{"key in other case", edit(`"batch_id"`, `"Batch_ID"`), `batch: unknown key "Batch_ID"`},
		{"repeated key", edit(`"batch_id":"b1"`, `"batch_id":"b1","batch_id":"b2"`), `batch: key "batch_id" repeated`},
		{"unknown push key", edit(`"push_id"`, `"priority":1,"push_id"`), `pushes[0]: unknown key "priority"`},
		{"repeated push key", edit(`"user_id":42`, `"user_id":42,"user_id":43`), `pushes[0]: key "user_id" repeated`},
		{"unknown item key", edit(`"template_id":7`, `"x":null,"template_id":7`), `pushes[0].items[0]: unknown key "x"`},
		{"missing batch_id", edit(`"batch_id":"b1",`, ``), "batch: missing batch_id"},
		{"empty batch_id", edit(`"batch_id":"b1"`, `"batch_id":""`), "batch_id: empty"},
		{"batch_id a number", edit(`"batch_id":"b1"`, `"batch_id":1`), "batch_id: want a string, got a number"},
		{"missing emitted_at", edit(`"emitted_at":"2026-11-23T09:59:00.012Z",`, ``), "batch: missing emitted_at"},
		{"emitted_at with offset", edit(`09:59:00.012Z`, `09:59:00.012+01:00`), "emitted_at: time"},
		{"emitted_at in year zero", edit(`"emitted_at":"2026`, `"emitted_at":"0000`), "emitted_at: year 0"},
		{"missing pushes", `{"batch_id":"b","emitted_at":"2026-11-23T09:59:00.012Z"}`, "batch: missing pushes"},
		{"null pushes", `{"batch_id":"b","emitted_at":"2026-11-23T09:59:00.012Z","pushes":null}`, `pushes: want '[', got null`},
		{"empty pushes", `{"batch_id":"b","emitted_at":"2026-11-23T09:59:00.012Z","pushes":[]}`, "pushes: no pushes"},
		{"null push", `{"batch_id":"b","emitted_at":"2026-11-23T09:59:00.012Z","pushes":[null]}`, `pushes[0]: want '{', got null`},
		{"missing push_id", edit(`"push_id":"p1",`, ``), "pushes[0]: missing push_id"},
		{"empty push_id", edit(`"push_id":"p1"`, `"push_id":""`), "pushes[0].push_id: empty"},
		{"missing user_id", edit(`"user_id":42,`, ``), "pushes[0]: missing user_id"},
		{"zero user_id", edit(`"user_id":42`, `"user_id":0`), "pushes[0].user_id: 0 is not positive"},
		{"negative user_id", edit(`"user_id":42`, `"user_id":-42`), "pushes[0].user_id: -42 is not positive"},
		{"fractional user_id", edit(`"user_id":42`, `"user_id":42.5`), "user_id: 42.5 is not an integer"},
		{"exponent user_id", edit(`"user_id":42`, `"user_id":4e1`), "user_id: 4e1 is not an integer"},
		{"user_id as string", edit(`"user_id":42`, `"user_id":"42"`), "user_id: want an integer, got a string"},
		{"user_id overflow", edit(`"user_id":42`, `"user_id":9223372036854775808`), "is not a 64-bit integer"},
		{"user_id true", edit(`"user_id":42`, `"user_id":true`), "user_id: want an integer, got a boolean"},
		{"missing due_at", edit(`"due_at":"2026-11-23T09:59:00.000Z",`, ``), "pushes[0]: missing due_at"},
		{"due_at not earliest", edit(`"due_at":"2026-11-23T09:59:00.000Z"`, `"due_at":"2026-11-23T09:59:05.000Z"`), "pushes[0]: push p1: due_at 2026-11-23T09:59:05.000Z is not the earliest"},
		{"empty items", `{"batch_id":"b","emitted_at":"2026-11-23T09:59:00.012Z","pushes":[{"push_id":"p","user_id":1,"due_at":"2026-11-23T09:59:00.000Z","items":[]}]}`, "pushes[0]: push p: no items"},
		{"null items", `{"batch_id":"b","emitted_at":"2026-11-23T09:59:00.012Z","pushes":[{"push_id":"p","user_id":1,"due_at":"2026-11-23T09:59:00.000Z","items":null}]}`, `pushes[0].items: want '[', got null`},
		{"items an object", edit(`"items":[`, `"items":{"a":[`), `pushes[0].items: want '[', got '{'`},
		{"missing template_id", edit(`"template_id":7,`, ``), "pushes[0].items[0]: missing template_id"},
		{"zero template_id", edit(`"template_id":7`, `"template_id":0`), "pushes[0].items[0].template_id: 0 is not positive"},
		{"missing push_at", edit(`"push_at":"2026-11-23T09:59:00.000Z",`, ``), "pushes[0].items[0]: missing push_at"},
		{"push_at without ms", edit(`"push_at":"2026-11-23T09:59:00.000Z"`, `"push_at":"2026-11-23T09:59:00Z"`), "items[0].push_at: time"},
		{"grab_start not a date", edit(`"grab_start":"2026-11-23T10:00:00.000Z"`, `"grab_start":"2026-11-31T10:00:00.000Z"`), "grab_start: time \"2026-11-31T10:00:00.000Z\" is not a valid date"},
		{"grab_start a number", edit(`"grab_start":"2026-11-23T10:00:00.000Z"`, `"grab_start":1795471200000`), "grab_start: want a time string, got a number"},
		{"grab_start in year zero", edit(`"grab_start":"2026-11-23T10:00:00.000Z"`, `"grab_start":"0000-11-23T10:00:00.000Z"`), "grab_start: year 0"},
		{"leading zero", edit(`"user_id":42`, `"user_id":042`), "user_id: 042 has a leading zero"},
		{"plus sign", edit(`"user_id":42`, `"user_id":+42`), "user_id: want an integer"},
		{"missing colon", edit(`"user_id":42`, `"user_id" 42`), `want ':' after "user_id"`},
		{"missing comma", edit(`"user_id":42,`, `"user_id":42 `), "pushes[0]: want ',' or '}'"},
		{"trailing comma in object", edit(`"batch_id":"b1",`, `"batch_id":"b1",,`), "batch: want a key"},
		{"trailing comma in array", edit(`}]}]}`, `},]}]}`), "pushes[0].items[2]: want '{'"},
		{"key not a string", edit(`"batch_id"`, `batch_id`), "batch: want a key"},
		{"control character in id", edit(`"p1"`, "\"p\x01\""), "push_id: control character"},
		{"invalid UTF-8 in id", edit(`"p1"`, "\"p\xff\""), "push_id: invalid UTF-8"},
		{"lone surrogate", edit(`"p1"`, `"p\ud800"`), "push_id: lone surrogate"},
		{"bad escape", edit(`"p1"`, `"p\x"`), `push_id: bad escape \x`},
		{"unterminated string", `{"batch_id":"b`, "batch_id: unterminated string"},
		{"second item broken", edit(`"template_id":8`, `"template_id":-8`), "pushes[0].items[1].template_id: -8 is not positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := DecodeBatch([]byte(tt.in))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("DecodeBatch = %+v, %v; want ErrInvalid", b, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// FuzzDecodeBatch feeds DecodeBatch arbitrary bytes. It must never panic,
// and whatever it accepts must encode and decode back to the same batch,
// with the encoding a fixed point.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(validJSON))
	f.Add([]byte(`{"batch_id":"b","emitted_at":"2026-11-23T09:59:00.012Z","pushes":[]}`))
	f.Add([]byte(`{"batch_id":"\u00e9\"","emitted_at":"9999-12-31T23:59:59.999Z","pushes":[{"push_id":"<&>","user_id":1,"due_at":"0001-01-01T00:00:00.001Z","items":[{"template_id":9223372036854775807,"push_at":"0001-01-01T00:00:00.001Z","grab_start":"2024-02-29T00:00:00.000Z"}]}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"pushes":[null]}`))
	f.Add([]byte(strings.Replace(validJSON, `"p1"`, `"\u00e9\ud83d\ude00\n\/"`, 1)))
	f.Add([]byte(" \t" + strings.ReplaceAll(validJSON, ",", " ,\r\n") + "\n"))
	if out, err := AppendBatch(nil, testBatch(testPush(1, 2), testPush(3, 4))); err == nil {
		f.Add(out)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := DecodeBatch(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		// Whatever DecodeBatch accepts is valid JSON that encoding/json
		// reads to the same values: the scanner is stricter, never looser.
		if !json.Valid(in) {
			t.Fatalf("accepted invalid JSON: %q", in)
		}
		var viaJSON Batch
		if err := json.Unmarshal(in, &viaJSON); err != nil {
			t.Fatalf("accepted what encoding/json rejects (%v): %q", err, in)
		}
		assertSameBatch(t, "encoding/json", viaJSON, b)
		enc, err := AppendBatch(nil, b)
		if err != nil {
			t.Fatalf("decoded batch does not encode: %v\n%+v", err, b)
		}
		again, err := DecodeBatch(enc)
		if err != nil {
			t.Fatalf("encoding does not decode: %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(b, again) {
			t.Fatalf("round trip changed the batch\n%+v\n%+v", b, again)
		}
		enc2, _ := AppendBatch(nil, again)
		if string(enc) != string(enc2) {
			t.Fatalf("encoding is not a fixed point\n%s\n%s", enc, enc2)
		}
	})
}

// FuzzEncodeRoundTrip builds pushes from fuzzed fields: whatever AppendBatch
// accepts must read back the same through DecodeBatch and encoding/json.
func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add("b1", "p1", int64(42), int64(7), int64(1795471140000), int64(60000), int64(3), uint8(2))
	f.Add("", "\x00\"\\", int64(-1), int64(0), int64(0), int64(-1), int64(0), uint8(0))
	f.Add("é", "\u2028", int64(1<<62), int64(1<<62), int64(-62135596800000), int64(1), int64(999999), uint8(5))
	f.Fuzz(func(t *testing.T, batchID, pushID string, user, template, pushAtMs, leadMs, extraNs int64, nItems uint8) {
		items := make([]Item, 0, int(nItems%8))
		for i := range int(nItems % 8) {
			at := time.UnixMilli(pushAtMs + int64(i)*1000).Add(time.Duration(extraNs % 1e6))
			items = append(items, Item{TemplateID: template + int64(i), PushAt: at, GrabStart: at.Add(time.Duration(leadMs) * time.Millisecond)})
		}
		p := NewPush(user, items)
		if pushID != "" {
			p.ID = pushID
		}
		in := Batch{ID: batchID, EmittedAt: time.UnixMilli(pushAtMs), Pushes: []Push{p}}
		enc, err := AppendBatch(nil, in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		want := wireBatchOf(in)
		got, err := DecodeBatch(enc)
		if err != nil {
			t.Fatalf("DecodeBatch of encoder output: %v\n%s", err, enc)
		}
		assertSameBatch(t, "DecodeBatch", got, want)
		var viaJSON Batch
		if err := json.Unmarshal(enc, &viaJSON); err != nil {
			t.Fatalf("encoding/json: %v\n%s", err, enc)
		}
		assertSameBatch(t, "encoding/json", viaJSON, want)
		if !utf8.Valid(enc) {
			t.Fatalf("encoding is not UTF-8: %q", enc)
		}
	})
}

// BenchmarkDecodeBatch decodes one full default batch (500 one-item pushes),
// the reference consumer's work per message.
func BenchmarkDecodeBatch(b *testing.B) {
	p := newTestPublisher(b, PublisherConfig{})
	msgs, _, err := p.encode(manyPushes(DefaultMaxPushesPerBatch, 1))
	if err != nil || len(msgs) != 1 {
		b.Fatalf("encode: %d messages, %v", len(msgs), err)
	}
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBatch(msgs[0]); err != nil {
			b.Fatal(err)
		}
	}
}
