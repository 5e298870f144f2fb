package httpapi

import (
	"encoding/json"
	"slices"
	"testing"
	"unicode"
	"unicode/utf8"
)

// plainClientID is the client id rule, said another way: 1-64 runes of
// valid UTF-8 with no control, format (bidi, zero-width) or other
// non-printing character.
func plainClientID(s string) bool {
	if n := utf8.RuneCountInString(s); n < 1 || n > 64 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == utf8.RuneError || unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Zl, unicode.Zp) ||
			(unicode.Is(unicode.Zs, r) && r != ' ') {
			return false
		}
	}
	return true
}

// exactKeys fails unless every key of the decoded body is one of names,
// spelled exactly.
func exactKeys(t *testing.T, body []byte, names ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("decoded %q, which encoding/json refuses: %v", body, err)
	}
	for k := range m {
		if !slices.Contains(names, k) {
			t.Fatalf("decoded %q with key %q; only %q are known", body, k, names)
		}
	}
}

// FuzzDecodeClaim: any body either decodes to a positive user and a 1-64
// character request_id, or is a 400 with a code.
//
//	go test -run '^$' -fuzz FuzzDecodeClaim -fuzztime 30s ./httpapi/
func FuzzDecodeClaim(f *testing.F) {
	for _, seed := range []string{
		`{"user_id":7,"request_id":"a"}`, `{"user_id":0,"request_id":"a"}`, `{"user_id":-1}`, `{"user_id":1e3,"request_id":"x"}`,
		`{"user_id":9223372036854775808,"request_id":"x"}`, `{"request_id":""}`, `{}`, `[]`, `null`, ``, `{"user_id":1,"request_id":"a"}x`,
		"{\"user_id\":1,\"request_id\":\"\xff\"}", `{"user_id":1,"request_id":"a","extra":1}`,
		`{"USER_ID":1,"request_id":"a"}`, `{"user_id":1,"user_id":2,"request_id":"a"}`, `{"user_id":1,"request_id":"a\u202eb"}`,
		`{"user_id":1,"request_id":"a\u200bb"}`, `{"user_id":1,"request_id":"\t"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		user, rid, e := decodeClaim(body)
		if e != nil {
			checkDecodeError(t, e)
			return
		}
		if user <= 0 || !plainClientID(rid) {
			t.Fatalf("decoded user %d request_id %q from %q", user, rid, body)
		}
		exactKeys(t, body, "user_id", "request_id")
	})
}

// FuzzDecodeOrder: the same for lock, unlock and redeem bodies.
func FuzzDecodeOrder(f *testing.F) {
	for _, seed := range []string{`{"user_id":7,"order_id":"o"}`, `{"user_id":7,"order_id":null}`, `{"order_id":"o"}`, `{"user_id":true}`, `{`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		user, order, e := decodeOrder(body)
		if e != nil {
			checkDecodeError(t, e)
			return
		}
		if user <= 0 || !plainClientID(order) {
			t.Fatalf("decoded user %d order %q from %q", user, order, body)
		}
		exactKeys(t, body, "user_id", "order_id")
	})
}

// FuzzDecodeStock: a stock add decodes to 1..1e9 or is a 400.
func FuzzDecodeStock(f *testing.F) {
	for _, seed := range []string{`{"add":5}`, `{"add":0}`, `{"add":-5}`, `{"add":1000000001}`, `{"add":"5"}`, `{"add":5.5}`, `{}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, e := decodeStock(body)
		if e != nil {
			checkDecodeError(t, e)
			return
		}
		if n < 1 || n > 1e9 {
			t.Fatalf("decoded add %d from %q", n, body)
		}
	})
}
