package abuse

import "strings"

// keys builds every Redis key of the package. Each key carries a hash tag
// of its own, so it is one Redis Cluster slot and every script here has
// exactly one key.
//
//	rate:<p>:{<p>:rl:<ACTION>:<K>:<S>}  string: GCRA state of ACTION's limit
//	                                   for subject S of kind K (u or ip),
//	                                   limitScript's ("rate:" in front, as
//	                                   redis_rate, used before, wrote it),
//	                                   or firstMark (first.go)
//	<p>:{<p>:rl:trips:<K>:<S>}         string: limits S tripped in the
//	                                   current auto-block window (expires
//	                                   with it)
//	<p>:{<p>:block:<K>:<S>}            string: the block of S, JSON
//	                                   blockValue; expires when the block
//	                                   ends
//	<p>:{<p>:blocks}                   sorted set: index of blocks for
//	                                   List, member "<K>:<S>", score the
//	                                   block's end in Redis ms; expires
//	                                   with its last entry
//
// S is a user id in decimal or an IP address in netip's canonical form.
type keys struct{ prefix string }

func (k keys) tagged(s string) string { return k.prefix + ":{" + k.prefix + ":" + s + "}" }

// rate names a's limit of s; limit is its key.
func (k keys) rate(a Action, s Subject) string { return k.tagged("rl:" + string(a) + ":" + s.String()) }

func (k keys) limit(a Action, s Subject) string { return "rate:" + k.rate(a, s) }

func (k keys) trips(s Subject) string { return k.tagged("rl:trips:" + s.String()) }

func (k keys) block(s Subject) string { return k.tagged("block:" + s.String()) }

func (k keys) index() string { return k.tagged("blocks") }

// String names s in keys and in the index: "u:<id>" or "ip:<addr>".
func (s Subject) String() string {
	if s.Kind == User {
		return "u:" + s.ID
	}
	return "ip:" + s.ID
}

// parseSubject reverses Subject.String.
func parseSubject(s string) (Subject, bool) {
	if id, ok := strings.CutPrefix(s, "u:"); ok && id != "" {
		return Subject{User, id}, true
	}
	if ip, ok := strings.CutPrefix(s, "ip:"); ok && ip != "" {
		return Subject{IP, ip}, true
	}
	return Subject{}, false
}
