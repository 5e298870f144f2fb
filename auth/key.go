package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/MicahParks/jwkset"
)

// The asymmetric algorithms user tokens may be signed with.
const (
	algRS256 = "RS256"
	algES256 = "ES256"
	algEdDSA = "EdDSA"
)

// MinRSABits is the smallest RSA key accepted.
const MinRSABits = 2048

// Key is one public key that verifies user tokens.
type Key struct {
	// ID is the JWK's kid; empty for a PEM key.
	ID string

	alg      string // the one algorithm this key verifies
	key      any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	fromJWKS bool
}

// Alg is the algorithm the key verifies: RS256, ES256 or EdDSA.
func (k Key) Alg() string { return k.alg }

// publicKey makes a Key of pub, refusing key types and sizes that no
// accepted algorithm uses.
func publicKey(pub any) (Key, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if n := p.N.BitLen(); n < MinRSABits {
			return Key{}, fmt.Errorf("RSA key of %d bits, want at least %d", n, MinRSABits)
		}
		return Key{alg: algRS256, key: p}, nil
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return Key{}, fmt.Errorf("ECDSA key on %s, want P-256 (ES256)", p.Curve.Params().Name)
		}
		return Key{alg: algES256, key: p}, nil
	case ed25519.PublicKey:
		return Key{alg: algEdDSA, key: p}, nil
	}
	return Key{}, fmt.Errorf("unsupported public key type %T (want RSA, ECDSA P-256 or Ed25519)", pub)
}

// ParsePEM reads the public keys of a PEM file: PUBLIC KEY (PKIX), RSA
// PUBLIC KEY (PKCS #1) or CERTIFICATE blocks. A private key is refused: the
// worker needs only public keys.
func ParsePEM(data []byte) ([]Key, error) {
	var keys []Key
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var (
			pub any
			err error
		)
		switch {
		case block.Type == "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case block.Type == "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case block.Type == "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = cert.PublicKey
			}
		case strings.Contains(block.Type, "PRIVATE KEY"):
			return nil, fmt.Errorf("pem block %d is a private key: give only public keys", n)
		default:
			return nil, fmt.Errorf("pem block %d: unsupported type %q", n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("pem block %d (%s): %w", n, block.Type, err)
		}
		k, err := publicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("pem block %d: %w", n, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return keys, nil
}

// ParseJWKS reads the signature keys of a JWK Set (RFC 7517) with jwkset.
// Keys for encryption (use "enc") and keys whose alg is not the one
// accepted for their type are left out; symmetric and private keys are
// refused.
func ParseJWKS(data []byte) ([]Key, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	for i, m := range set.Keys {
		switch {
		case m.KTY == jwkset.KtyOct:
			return nil, fmt.Errorf("jwks key %d (kid %q) is symmetric: give an HS256 secret as the HS256 secret setting", i+1, m.KID)
		case m.D != "" || m.P != "" || m.Q != "":
			return nil, fmt.Errorf("jwks key %d (kid %q) holds private key material: give only public keys", i+1, m.KID)
		}
	}
	jwks, err := set.JWKSlice()
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var keys []Key
	for i, j := range jwks {
		m := j.Marshal()
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue
		}
		k, err := publicKey(j.Key())
		if err != nil {
			return nil, fmt.Errorf("jwks key %d (kid %q): %w", i+1, m.KID, err)
		}
		if m.ALG != "" && string(m.ALG) != k.alg {
			continue
		}
		k.ID, k.fromJWKS = m.KID, true
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks: no signature key for RS256, ES256 or EdDSA")
	}
	return keys, nil
}
