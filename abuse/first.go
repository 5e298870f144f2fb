package abuse

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// First tokens: most requests of a hot drop are each user's first in a
// while, and a subject without a limit state in Redis has its full burst,
// so its request is admitted whatever the limit. Admit then takes the
// token with a plain SET NX of firstMark, which expires one emission
// interval (rounded up to a millisecond, plus one) later, in the blocks'
// round trip, instead of running limitScript, several times dearer for
// Redis. The mark is the state "one token taken": limitScript reads it as
// a TAT as far ahead of now as the key still lives. Only when the SET NX
// finds a state there does the limit script run, in a round trip of its
// own: a subject's repeated requests within an interval cost one round
// trip more.
//
// The mark never lets more through than the limit: the key lives at
// least one interval after it was written (the extra millisecond covers
// Redis's millisecond clock), so a subject whose key is gone has its full
// burst, and a TAT read from the key's time to live is never earlier than
// the key's end (limitScript), so never earlier than the script would have
// set. It is later by under three milliseconds (two of rounding, one of the
// clock PTTL counts from), so the limit is stricter by under three
// milliseconds of its rate: a hundredth of a token for a user's few a
// second, but a subject that sends its whole burst within those
// milliseconds of its first request gets one request fewer. Limits of
// over maxFirstRate a second (an interval under a millisecond) always run
// the script, as do leased ones.

// firstMark is the value of a limit state written by a first token; a
// TAT is never 0 (it counts from 2017).
const firstMark = "0"

// maxFirstRate is the highest rate whose first tokens are taken by mark.
const maxFirstRate = 1000

// firstTTL is how long firstMark lives for limit l: its emission interval
// rounded up to a millisecond, plus one; 0 for a rate over maxFirstRate.
func firstTTL(l Limit) time.Duration {
	if l.Rate <= 0 || l.Rate > maxFirstRate {
		return 0
	}
	ms := (1000 + l.Rate - 1) / l.Rate
	return time.Duration(ms+1) * time.Millisecond
}

// firstToken queues the write of a first token of limit state key on
// pipe: its reply is OK when taken, redis.Nil when key holds a state.
func firstToken(ctx context.Context, pipe redis.Pipeliner, key string, ttl time.Duration) *redis.StatusCmd {
	return pipe.SetArgs(ctx, key, firstMark, redis.SetArgs{Mode: "NX", TTL: ttl})
}
