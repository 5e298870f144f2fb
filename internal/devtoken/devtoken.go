package devtoken

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Tokens are the bearer tokens a caller of the API sends: the operator's,
// and users' HS256 JWTs signed with Secret. The zero Tokens sends none,
// for a worker with auth off.
type Tokens struct {
	Operator string
	Secret   []byte
}

// New makes a random operator token and HS256 secret, for a worker
// this process starts (the bench) or configures (make run).
func New() (Tokens, error) {
	b := make([]byte, 64)
	if _, err := rand.Read(b); err != nil {
		return Tokens{}, fmt.Errorf("tokens: %w", err)
	}
	return Tokens{Operator: base64.RawURLEncoding.EncodeToString(b[:32]), Secret: []byte(base64.RawURLEncoding.EncodeToString(b[32:]))}, nil
}

// User returns a token for user valid for an hour; "" for the zero Tokens.
func (t Tokens) User(user int64) (string, error) {
	if t.Secret == nil {
		return "", nil
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": fmt.Sprint(user), "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(t.Secret)
}
