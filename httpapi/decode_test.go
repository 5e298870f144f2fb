package httpapi

import (
	"strings"
	"testing"
)

// TestStrictDecoding: keys match exactly and once; client ids are
// printable. Each refused body is a 400 naming what is wrong.
func TestStrictDecoding(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       string // "" = accepted; else a part of the error message
	}{
		{"exact keys", `{"user_id":7,"request_id":"r-1"}`, ""},
		{"spaces and unicode letters", `{"user_id":7,"request_id":"Bestellung ä 7 🎟"}`, ""},
		{"64 characters", `{"user_id":7,"request_id":"` + strings.Repeat("é", 64) + `"}`, ""},
		{"key in upper case", `{"USER_ID":7,"request_id":"r"}`, `unknown field "USER_ID"`},
		{"key in mixed case", `{"user_id":7,"Request_Id":"r"}`, `unknown field "Request_Id"`},
		{"key given twice", `{"user_id":7,"user_id":8,"request_id":"r"}`, `field "user_id" is given twice`},
		{"key given twice, once folded", `{"user_id":7,"request_id":"r","REQUEST_ID":"s"}`, `unknown field "REQUEST_ID"`},
		{"unknown key", `{"user_id":7,"request_id":"r","x":1}`, `unknown field "x"`},
		{"65 characters", `{"user_id":7,"request_id":"` + strings.Repeat("a", 65) + `"}`, "printable"},
		{"empty", `{"user_id":7,"request_id":""}`, "printable"},
		{"control character", `{"user_id":7,"request_id":"a\u0007b"}`, "printable"},
		{"tab", `{"user_id":7,"request_id":"a\tb"}`, "printable"},
		{"bidi override", `{"user_id":7,"request_id":"abc\u202edcba"}`, "printable"},
		{"bidi isolate", `{"user_id":7,"request_id":"a\u2066b"}`, "printable"},
		{"zero-width space", `{"user_id":7,"request_id":"a\u200bb"}`, "printable"},
		{"zero-width joiner", `{"user_id":7,"request_id":"a\u200db"}`, "printable"},
		{"byte order mark", `{"user_id":7,"request_id":"\ufeffab"}`, "printable"},
		{"no-break space", `{"user_id":7,"request_id":"a\u00a0b"}`, "printable"},
		{"invalid UTF-8", "{\"user_id\":7,\"request_id\":\"a\xffb\"}", "printable"},
		{"malformed after a good key", `{"user_id":7,"request_id":`, "ends too soon"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, rid, e := decodeClaim([]byte(tc.body))
			if tc.want == "" {
				if e != nil {
					t.Fatalf("refused %q: %+v", tc.body, e)
				}
				if user != 7 || rid == "" {
					t.Fatalf("decoded user %d request_id %q", user, rid)
				}
				return
			}
			if e == nil {
				t.Fatalf("accepted %q as user %d request_id %q", tc.body, user, rid)
			}
			checkDecodeError(t, e)
			got := e.message
			for _, f := range e.fields {
				got += " " + f.Message
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("error %q, want it to say %q", got, tc.want)
			}
		})
	}
}
