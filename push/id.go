package push

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
)

// Key identifies one reminder inside a push for the purpose of its id: the
// template and the reminder's push time in milliseconds since the Unix epoch.
type Key struct {
	TemplateID int64 // Item.TemplateID
	PushAtMs   int64 // Item.PushAt in milliseconds since the Unix epoch
}

// idVersion starts the canonical form; a different derivation must change it.
const idVersion = "couponpush-push-v1"

// ID returns the push id of the push that carries items to userID. It
// depends only on the user and the set of keys: order does not matter and a
// repeated key counts once. The message center drops a push whose id it has
// seen, so this derivation is part of the contract (a redelivery carries the
// same id, invariant R5) and must never change silently.
//
// Canonical form, all integers in base 10 with no padding or plus sign, keys
// sorted ascending by TemplateID then PushAtMs, exact repeats removed:
//
//	couponpush-push-v1:<user_id>(;<template_id>@<push_at_ms>)*
//
// for example "couponpush-push-v1:42;7@1795471140000;9@1795471145000". The
// id is the lowercase hex of the first 16 bytes of SHA-256 over that string:
// 32 characters. items is not modified.
func ID(userID int64, items []Key) string {
	var small [8]Key // nearly every push has one item: no allocation
	keys := append(small[:0], items...)
	slices.SortFunc(keys, func(a, b Key) int {
		if c := cmp.Compare(a.TemplateID, b.TemplateID); c != 0 {
			return c
		}
		return cmp.Compare(a.PushAtMs, b.PushAtMs)
	})
	keys = slices.Compact(keys)
	var stack [128]byte
	buf := canonical(stack[:0], userID, keys)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:16])
}

// canonical appends the canonical form of (userID, sorted unique keys).
func canonical(dst []byte, userID int64, keys []Key) []byte {
	dst = append(dst, idVersion...)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, userID, 10)
	for _, k := range keys {
		dst = append(dst, ';')
		dst = strconv.AppendInt(dst, k.TemplateID, 10)
		dst = append(dst, '@')
		dst = strconv.AppendInt(dst, k.PushAtMs, 10)
	}
	return dst
}
