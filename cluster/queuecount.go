package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/hashicorp/consul/api"
)

// MaxQueueCount is the largest queue count N accepted.
const MaxQueueCount = 65536

var (
	// ErrBadQueueCount is wrapped by errors about a queue count that is not
	// a decimal integer from 1 to MaxQueueCount.
	ErrBadQueueCount = errors.New("bad queue count")
	// ErrNoLeader means the agent answered but its cluster has no leader.
	ErrNoLeader = errors.New("consul has no leader")
)

// ParseQueueCount parses the value of the queue-count key: a decimal
// integer from 1 to MaxQueueCount, digits only (no sign), with surrounding
// whitespace allowed. Errors wrap ErrBadQueueCount.
func ParseQueueCount(b []byte) (int, error) {
	s := bytes.TrimSpace(b)
	if len(s) == 0 {
		return 0, fmt.Errorf("%w: empty", ErrBadQueueCount)
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %s is not a decimal integer", ErrBadQueueCount, quote(b))
		}
		if n = n*10 + int(c-'0'); n > MaxQueueCount {
			return 0, fmt.Errorf("%w: %s is above %d", ErrBadQueueCount, quote(b), MaxQueueCount)
		}
	}
	if n < 1 {
		return 0, fmt.Errorf("%w: %s is below 1", ErrBadQueueCount, quote(b))
	}
	return n, nil
}

// quote quotes a value for an error or log, cut to a readable length.
func quote(b []byte) string {
	if len(b) > 32 {
		return strconv.Quote(string(b[:32])) + "..."
	}
	return strconv.Quote(string(b))
}

// checkQueueCount reports whether n is a valid queue count.
func checkQueueCount(n int) error {
	if n < 1 || n > MaxQueueCount {
		return fmt.Errorf("%w: %d is not between 1 and %d", ErrBadQueueCount, n, MaxQueueCount)
	}
	return nil
}

// QueueCount reads N from Consul. found is false when the key is absent
// (then n and modifyIndex are 0). When the key holds a bad value, err wraps
// ErrBadQueueCount and modifyIndex is still set, so the value can be fixed
// with SetQueueCount.
func (c *Client) QueueCount(ctx context.Context) (n int, modifyIndex uint64, found bool, err error) {
	key := c.QueueCountKey()
	pair, _, err := c.api.KV().Get(key, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return 0, 0, false, fmt.Errorf("read %s from consul: %w", key, err)
	}
	if pair == nil {
		return 0, 0, false, nil
	}
	n, err = ParseQueueCount(pair.Value)
	if err != nil {
		return 0, pair.ModifyIndex, true, fmt.Errorf("read %s from consul: %w", key, err)
	}
	return n, pair.ModifyIndex, true, nil
}

// SetQueueCount writes N with check-and-set: it succeeds only if the key's
// modify index is still cas (0 means only if the key is absent). ok is false
// when someone else changed the key first; read it again and decide. n must
// be from 1 to MaxQueueCount.
func (c *Client) SetQueueCount(ctx context.Context, n int, cas uint64) (ok bool, err error) {
	if err := checkQueueCount(n); err != nil {
		return false, err
	}
	key := c.QueueCountKey()
	pair := &api.KVPair{Key: key, Value: []byte(strconv.Itoa(n)), ModifyIndex: cas}
	ok, _, err = c.api.KV().CAS(pair, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return false, fmt.Errorf("write %s=%d to consul: %w", key, n, err)
	}
	return ok, nil
}
