package queue

import "strconv"

// Every key of queue i carries the hash tag {<prefix>:q<i>}, so each Lua
// script touches one Redis Cluster slot and names all its keys in KEYS.
//
//	<prefix>:{<prefix>:q<i>}:due     ZSET  user_id → earliest due time (ms) of its pending items and tombstones, for users whose next push is of normal priority
//	<prefix>:{<prefix>:q<i>}:due:high ZSET as due, for users whose next push is of high priority (see Priority)
//	<prefix>:{<prefix>:q<i>}:due:low  ZSET as due, for low priority
//	<prefix>:{<prefix>:q<i>}:items   HASH  user_id → packed records "tid,ms,ver,state;..." (see lua/prelude.lua)
//	<prefix>:{<prefix>:q<i>}:flight  ZSET  chunk of fixed pushes ("user|tid:ms,..." lines) → redelivery deadline (ms)
//	<prefix>:{<prefix>:q<i>}:marks   ZSET  acked chunk → time it was acked (ms), until MySQL knows it was sent
//	<prefix>:{<prefix>:q<i>}:dead    HASH  push line "user|tid:ms,..." that can never be published → "<ms> <reason>" (see dead.go)
//	<prefix>:{<prefix>:q<i>}:lease   STRING the holder's random token, with a PX expiry
//	<prefix>:{<prefix>:q<i>}:epoch   STRING the layout "gen:from:to" this queue follows (absent = any; see layout.go)
//	<prefix>:{<prefix>:q<i>}:moving  HASH  user_id → record taken out while N changes, until merged into its new queue
//	<prefix>:{<prefix>:q<i>}:ready   ZSET  id of a chunk of normal-priority pushes prepared ahead of due → its publish time (ms)
//	<prefix>:{<prefix>:q<i>}:ready:high ZSET as ready, for a chunk of high priority (its id starts with "h")
//	<prefix>:{<prefix>:q<i>}:ready:low  ZSET as ready, for low priority (its id starts with "l")
//	<prefix>:{<prefix>:q<i>}:prep    HASH  id → its pushes (a chunk's stored form); id:e → its encoded messages; id:w → withdrawn since; # → last id
//	<prefix>:{<prefix>:q<i>}:held    HASH  "user_id:template_id" of a prepared item → id of its chunk, until forgotten
//
// Keys that span queues (no script touches them together with a queue key):
//
//	<prefix>:next   ZSET  queue index → earliest time it has work (due user, expired or orphaned flight)
//	<prefix>:next:high ZSET queue index → earliest time it has high-priority work (see UrgentQueues)
//	<prefix>:paused STRING present while operators have paused emitting
//	<prefix>:layout HASH  the current layout and the progress of a move (see layout.go)
type queueKeys struct {
	due, items, flight, marks, dead, lease, epoch, moving string
	ready, prep, held                                     string
	dueHigh, dueLow, readyHigh, readyLow                  string
}

func (c *Client) keys(q int) queueKeys {
	tag := c.prefix + ":{" + c.prefix + ":q" + strconv.Itoa(q) + "}:"
	return queueKeys{
		due:    tag + "due",
		items:  tag + "items",
		flight: tag + "flight",
		marks:  tag + "marks",
		dead:   tag + "dead",
		lease:  tag + "lease",
		epoch:  tag + "epoch",
		moving: tag + "moving",
		ready:  tag + "ready",
		prep:   tag + "prep",
		held:   tag + "held",

		dueHigh:   tag + "due:high",
		dueLow:    tag + "due:low",
		readyHigh: tag + "ready:high",
		readyLow:  tag + "ready:low",
	}
}

func (c *Client) nextKey() string { return c.prefix + ":next" }

// urgentKey is the next index of high-priority work: queue → earliest time
// it has a high push to take or begin (see UrgentQueues).
func (c *Client) urgentKey() string { return c.prefix + ":next:high" }
func (c *Client) pausedKey() string { return c.prefix + ":paused" }
func (c *Client) layoutKey() string { return c.prefix + ":layout" }

// dueSets are queue k's due sets, most urgent class first.
func (k queueKeys) dueSets() [3]string { return [3]string{k.dueHigh, k.due, k.dueLow} }

// readySets are queue k's ready sets, most urgent class first.
func (k queueKeys) readySets() [3]string { return [3]string{k.readyHigh, k.ready, k.readyLow} }

// moveOutKeys are move_out.lua's keys for queue k.
func (k queueKeys) moveOutKeys() []string {
	return []string{k.due, k.items, k.moving, k.epoch, k.ready, k.prep, k.held, k.dueHigh, k.dueLow, k.readyHigh, k.readyLow}
}

// moveInKeys are move_in.lua's keys for queue k.
func (k queueKeys) moveInKeys() []string {
	return []string{k.due, k.items, k.epoch, k.dueHigh, k.dueLow}
}
