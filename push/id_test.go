package push

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestIDGolden(t *testing.T) {
	t.Parallel()
	// The id is part of the contract: a redelivery, possibly by another
	// build of the worker, must carry the same id. These values must never
	// change.
	tests := []struct {
		name      string
		user      int64
		keys      []Key
		canonical string
	}{
		{"one item", 42, []Key{{7, 1795471140000}}, "couponpush-push-v1:42;7@1795471140000"},
		{"two items", 42, []Key{{9, 1795471145000}, {7, 1795471140000}}, "couponpush-push-v1:42;7@1795471140000;9@1795471145000"},
		{"negative time", 1, []Key{{1, -5}}, "couponpush-push-v1:1;1@-5"},
		{"no items", 5, nil, "couponpush-push-v1:5"},
	}
	t.Run("literal", func(t *testing.T) {
		// Computed once with: printf '%s' 'couponpush-push-v1:42;7@1795471140000' | sha256sum | cut -c1-32
		if got, want := ID(42, []Key{{7, 1795471140000}}), "9917861701616675110205215e0007a7"; got != want {
			t.Fatalf("ID = %s, want %s", got, want)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sum := sha256.Sum256([]byte(tt.canonical))
			want := hex.EncodeToString(sum[:16])
			if got := ID(tt.user, tt.keys); got != want {
				t.Fatalf("ID = %s, want %s (sha256 of %q)", got, want, tt.canonical)
			}
		})
	}
}

func TestIDOrderAndRepeats(t *testing.T) {
	t.Parallel()
	a, b, c := Key{7, 1000}, Key{7, 2000}, Key{3, 2000}
	tests := []struct {
		name string
		keys []Key
	}{
		{"sorted", []Key{c, a, b}},
		{"reversed", []Key{b, a, c}},
		{"shuffled", []Key{a, c, b}},
		{"repeated key", []Key{a, c, b, a, c}},
	}
	want := ID(42, []Key{a, b, c})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := append([]Key(nil), tt.keys...)
			if got := ID(42, tt.keys); got != want {
				t.Fatalf("ID(%v) = %s, want %s", tt.keys, got, want)
			}
			for i := range in {
				if in[i] != tt.keys[i] {
					t.Fatalf("ID reordered its input: %v", tt.keys)
				}
			}
		})
	}
}

func TestIDDiffers(t *testing.T) {
	t.Parallel()
	base := ID(42, []Key{{7, 1000}})
	tests := []struct {
		name string
		id   string
	}{
		{"other user", ID(43, []Key{{7, 1000}})},
		{"other template", ID(42, []Key{{8, 1000}})},
		{"other push time", ID(42, []Key{{7, 1001}})},
		{"extra item", ID(42, []Key{{7, 1000}, {8, 1000}})},
		{"no items", ID(42, nil)},
		{"digits moved between fields", ID(4, []Key{{27, 1000}})},
		{"digits moved between template and time", ID(42, []Key{{71, 000}})},
	}
	seen := map[string]string{base: "base"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the cases share seen.
			if len(tt.id) != 32 {
				t.Fatalf("id %q is not 32 hex characters", tt.id)
			}
			if prev, ok := seen[tt.id]; ok {
				t.Fatalf("id %s equals the one of %q", tt.id, prev)
			}
			seen[tt.id] = tt.name
		})
	}
}

func BenchmarkID(b *testing.B) {
	keys := []Key{{7, 1795471140000}, {9, 1795471145000}}
	for b.Loop() {
		_ = ID(123456789, keys)
	}
}
