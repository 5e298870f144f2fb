package auth

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Sources says where an Authenticator's tokens and keys come from: the
// worker's settings, values and file paths as given. Any may be empty.
type Sources struct {
	// OperatorToken is one operator token.
	OperatorToken string
	// OperatorTokensFile names a file of operator tokens, one a line;
	// blank lines and lines starting with # are skipped.
	OperatorTokensFile string
	// HS256Secret is the HS256 shared secret.
	HS256Secret string
	// HS256SecretFile names a file holding the HS256 secret (one trailing
	// newline is dropped); it keeps the secret out of ps and the
	// environment.
	HS256SecretFile string
	// PublicKeysFile names a PEM file of public keys.
	PublicKeysFile string
	// JWKSFile names a JWK Set file.
	JWKSFile string
	// Audience and Issuer are checked when set.
	Audience, Issuer string
}

// Empty reports whether s gives no token and no key.
func (s Sources) Empty() bool {
	return s.OperatorToken == "" && s.OperatorTokensFile == "" && s.HS256Secret == "" &&
		s.HS256SecretFile == "" && s.PublicKeysFile == "" && s.JWKSFile == ""
}

// Load reads the files s names and returns the Config they make. Errors
// name the file, never its contents.
func Load(s Sources) (Config, error) {
	c := Config{Audience: s.Audience, Issuer: s.Issuer}
	if s.OperatorToken != "" {
		c.OperatorTokens = append(c.OperatorTokens, s.OperatorToken)
	}
	if s.OperatorTokensFile != "" {
		data, err := os.ReadFile(s.OperatorTokensFile)
		if err != nil {
			return Config{}, fmt.Errorf("operator tokens file: %w", err)
		}
		n := 0
		for line := range strings.Lines(string(data)) {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				c.OperatorTokens = append(c.OperatorTokens, line)
				n++
			}
		}
		if n == 0 {
			return Config{}, fmt.Errorf("operator tokens file %s holds no token", s.OperatorTokensFile)
		}
	}
	switch {
	case s.HS256Secret != "" && s.HS256SecretFile != "":
		return Config{}, fmt.Errorf("give the HS256 secret once: by value or by file, not both")
	case s.HS256Secret != "":
		c.HS256Secret = []byte(s.HS256Secret)
	case s.HS256SecretFile != "":
		data, err := os.ReadFile(s.HS256SecretFile)
		if err != nil {
			return Config{}, fmt.Errorf("HS256 secret file: %w", err)
		}
		data = bytes.TrimSuffix(bytes.TrimSuffix(data, []byte("\n")), []byte("\r"))
		if len(data) == 0 {
			return Config{}, fmt.Errorf("HS256 secret file %s is empty", s.HS256SecretFile)
		}
		c.HS256Secret = data
	}
	if s.PublicKeysFile != "" {
		data, err := os.ReadFile(s.PublicKeysFile)
		if err != nil {
			return Config{}, fmt.Errorf("public keys file: %w", err)
		}
		keys, err := ParsePEM(data)
		if err != nil {
			return Config{}, fmt.Errorf("public keys file %s: %w", s.PublicKeysFile, err)
		}
		c.PublicKeys = append(c.PublicKeys, keys...)
	}
	if s.JWKSFile != "" {
		data, err := os.ReadFile(s.JWKSFile)
		if err != nil {
			return Config{}, fmt.Errorf("jwks file: %w", err)
		}
		keys, err := ParseJWKS(data)
		if err != nil {
			return Config{}, fmt.Errorf("jwks file %s: %w", s.JWKSFile, err)
		}
		c.PublicKeys = append(c.PublicKeys, keys...)
	}
	return c, nil
}
