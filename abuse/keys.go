package abuse

import "strings"

// keys builds every Redis key of the package. Each key carries a hash tag,
// so it is on one Redis Cluster slot; a subject's block and its limits
// share the block's tag, so checkScript reads both in one script.
//
//	<p>:{<p>:block:<K>:<S>}            string: the block of S (of kind K:
//	                                   u or ip), JSON blockValue; expires
//	                                   when the block ends
//	<p>:{<p>:block:<K>:<S>}:rl:<ACTION>
//	                                   string: GCRA state of ACTION's limit
//	                                   of S, checkScript's (redis_rate's
//	                                   format); expires when S is back to a
//	                                   full burst
//	<p>:{<p>:rl:trips:<K>:<S>}         string: limits S tripped in the
//	                                   current auto-block window (expires
//	                                   with it)
//	<p>:{<p>:blocks}                   sorted set: index of blocks for
//	                                   List, member "<K>:<S>", score the
//	                                   block's end in Redis ms; expires
//	                                   with its last entry
//
// S is a user id in decimal or an IP address in netip's canonical form.
//
// The block keys are those of every earlier version, so blocks in effect
// stay in effect across an upgrade. The limit keys were
// rate:<p>:{<p>:rl:<ACTION>:<K>:<S>} (redis_rate's names) until the limit
// moved under the block's tag: the limits' state does not carry over, so
// while workers of both versions serve, each counts on its own keys (a
// subject may get up to twice its limit for the rollout), and the old keys
// expire by themselves within a burst's time.
type keys struct{ prefix string }

func (k keys) tagged(s string) string { return k.prefix + ":{" + k.prefix + ":" + s + "}" }

func (k keys) block(s Subject) string { return k.tagged("block:" + s.String()) }

// limit is the state of a's limit of s, under s's block's tag.
func (k keys) limit(a Action, s Subject) string { return k.block(s) + ":rl:" + string(a) }

func (k keys) trips(s Subject) string { return k.tagged("rl:trips:" + s.String()) }

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
