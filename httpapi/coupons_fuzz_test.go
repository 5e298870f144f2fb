package httpapi

import (
	"testing"
	"unicode/utf8"
)

// FuzzDecodeClaim: any body either decodes to a positive user and a 1-64
// character request_id, or is a 400 with a code.
//
//	go test -run '^$' -fuzz FuzzDecodeClaim -fuzztime 30s ./httpapi/
func FuzzDecodeClaim(f *testing.F) {
	for _, seed := range []string{
		`{"user_id":7,"request_id":"a"}`, `{"user_id":0,"request_id":"a"}`, `{"user_id":-1}`, `{"user_id":1e3,"request_id":"x"}`,
		`{"user_id":9223372036854775808,"request_id":"x"}`, `{"request_id":""}`, `{}`, `[]`, `null`, ``, `{"user_id":1,"request_id":"a"}x`,
		"{\"user_id\":1,\"request_id\":\"\xff\"}", `{"user_id":1,"request_id":"a","extra":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		user, rid, e := decodeClaim(body)
		if e != nil {
			checkDecodeError(t, e)
			return
		}
		if n := utf8.RuneCountInString(rid); user <= 0 || n < 1 || n > 64 || !utf8.ValidString(rid) {
			t.Fatalf("decoded user %d request_id %q from %q", user, rid, body)
		}
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
		if n := utf8.RuneCountInString(order); user <= 0 || n < 1 || n > 64 || !utf8.ValidString(order) {
			t.Fatalf("decoded user %d order %q from %q", user, order, body)
		}
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
