package enginetest

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// prefixes maps each test that asked to its prefix and how many MySQL
// databases it has made.
var prefixes struct {
	sync.Mutex
	m map[testing.TB]*prefix
}

type prefix struct {
	name string
	dbs  int
}

// Prefix returns a short unique name for this test (letters, digits, '_'),
// for Redis key prefixes, NSQ topics and Consul KV prefixes. It starts with a
// letter, is at most 33 characters long, begins with the test's name for
// reading, and ends in 8 random characters, so that tests of parallel test
// binaries sharing one engine do not collide. Every call in one test (one t)
// returns the same name; subtests get their own.
func Prefix(t testing.TB) string {
	return prefixOf(t).name
}

func prefixOf(t testing.TB) *prefix {
	prefixes.Lock()
	defer prefixes.Unlock()
	if p, ok := prefixes.m[t]; ok {
		return p
	}
	if prefixes.m == nil {
		prefixes.m = make(map[testing.TB]*prefix)
	}
	p := &prefix{name: readable(t.Name(), 24) + "_" + randomSuffix(8)}
	prefixes.m[t] = p
	t.Cleanup(func() {
		prefixes.Lock()
		defer prefixes.Unlock()
		delete(prefixes.m, t)
	})
	return p
}

// readable turns a test name into letters, digits and single underscores,
// starting with a letter, at most max bytes long.
func readable(name string, max int) string {
	var b strings.Builder
	under := false
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			if b.Len() == 0 && r >= '0' && r <= '9' {
				b.WriteByte('t')
			}
			b.WriteRune(r)
			under = false
		case b.Len() > 0 && !under:
			b.WriteByte('_')
			under = true
		}
	}
	s := strings.TrimRight(b.String(), "_")
	if len(s) > max {
		s = strings.TrimRight(s[:max], "_")
	}
	if s == "" {
		s = "t"
	}
	return s
}

func randomSuffix(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b)
}
