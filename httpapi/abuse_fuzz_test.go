package httpapi

import (
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"couponpush/abuse"
)

// FuzzDecodeBlock: any body either decodes to a block time of 1s to
// abuse.MaxBlock in whole seconds and a reason of 1 to abuse.MaxReason
// printable characters, or is a 400 with a code.
//
//	go test -run '^$' -fuzz FuzzDecodeBlock -fuzztime 30s ./httpapi/
func FuzzDecodeBlock(f *testing.F) {
	for _, seed := range []string{
		`{"for_seconds":60,"reason":"bot"}`, `{"for_seconds":0,"reason":"x"}`, `{"for_seconds":2592001,"reason":"x"}`,
		`{"for_seconds":1.5,"reason":"x"}`, `{"for_seconds":60}`, `{"reason":"x"}`, `{"for_seconds":60,"reason":"  "}`,
		`{"for_seconds":60,"reason":"a\u0000b"}`, `{"for_seconds":60,"reason":"x","who":"auto"}`, `{}`, `[]`, `null`, ``,
		`{"for_seconds":60,"reason":"x"} {}`, "{\"for_seconds\":1,\"reason\":\"\xff\"}", `{"for_seconds":"60","reason":"x"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, reason, e := decodeBlock(body)
		if e != nil {
			checkDecodeError(t, e)
			return
		}
		if d < time.Second || d > abuse.MaxBlock || d%time.Second != 0 {
			t.Fatalf("decoded block time %v from %q", d, body)
		}
		if n := utf8.RuneCountInString(reason); n < 1 || n > abuse.MaxReason || !utf8.ValidString(reason) ||
			strings.ContainsFunc(reason, unicode.IsControl) || strings.TrimSpace(reason) != reason {
			t.Fatalf("decoded reason %q from %q", reason, body)
		}
	})
}
