package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkAuthenticateHS256 is one HS256 user token verified, as every
// checked request of the trust bench does (cmd/trustbench): sub and exp,
// like internal/devtoken's.
func BenchmarkAuthenticateHS256(b *testing.B) {
	a, err := New(Config{OperatorTokens: []string{opTok}, HS256Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "4242424242", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	if err != nil {
		b.Fatal(err)
	}
	header := "Bearer " + tok
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(header); err != nil {
			b.Fatal(err)
		}
	}
}
