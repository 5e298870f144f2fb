package push

import "crypto/sha256"

// dedupKeyBytes is the size of the digest kept per remembered push id.
const dedupKeyBytes = 16

// dedup remembers the last capacity push ids it was shown, forgetting the
// oldest first. Ids are kept as 16-byte digests (a prefix of SHA-256), so
// memory does not depend on id length: the ring costs 16 bytes per id and
// the map about 40 more; measured, 56 MB live at the default capacity of
// one million. Not safe for concurrent use.
type dedup struct {
	capacity int
	ring     [][dedupKeyBytes]byte // grows to capacity, then wraps
	next     int                   // slot to overwrite once the ring is full
	seen     map[[dedupKeyBytes]byte]struct{}
}

// newDedup returns a dedup remembering up to capacity (≥ 1) ids.
func newDedup(capacity int) *dedup {
	return &dedup{
		capacity: capacity,
		seen:     make(map[[dedupKeyBytes]byte]struct{}, min(capacity, 1<<12)),
	}
}

// add records id and reports whether it was new (not among the ids
// remembered).
func (d *dedup) add(id string) bool {
	sum := sha256.Sum256([]byte(id))
	var k [dedupKeyBytes]byte
	copy(k[:], sum[:])
	if _, ok := d.seen[k]; ok {
		return false
	}
	if len(d.ring) < d.capacity {
		d.ring = append(d.ring, k)
	} else {
		delete(d.seen, d.ring[d.next])
		d.ring[d.next] = k
		d.next = (d.next + 1) % d.capacity
	}
	d.seen[k] = struct{}{}
	return true
}

// len is the number of ids remembered.
func (d *dedup) len() int { return len(d.seen) }
