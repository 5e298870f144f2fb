package queue

import "strconv"

// Every key of queue i carries the hash tag {<prefix>:q<i>}, so each Lua
// script touches one Redis Cluster slot and names all its keys in KEYS.
//
//	<prefix>:{<prefix>:q<i>}:due     ZSET  user_id → earliest due time (ms) of its pending items and tombstones
//	<prefix>:{<prefix>:q<i>}:items   HASH  user_id → packed records "tid,ms,ver,state;..." (see lua/prelude.lua)
//	<prefix>:{<prefix>:q<i>}:flight  ZSET  chunk of fixed pushes ("user|tid:ms,..." lines) → redelivery deadline (ms)
//	<prefix>:{<prefix>:q<i>}:marks   ZSET  acked chunk → time it was acked (ms), until MySQL knows it was sent
//	<prefix>:{<prefix>:q<i>}:dead    HASH  push line "user|tid:ms,..." that can never be published → "<ms> <reason>" (see dead.go)
//	<prefix>:{<prefix>:q<i>}:lease   STRING the holder's random token, with a PX expiry
//	<prefix>:{<prefix>:q<i>}:epoch   STRING the layout "gen:from:to" this queue follows (absent = any; see layout.go)
//	<prefix>:{<prefix>:q<i>}:moving  HASH  user_id → record taken out while N changes, until merged into its new queue
//	<prefix>:{<prefix>:q<i>}:ready   ZSET  id of a chunk prepared ahead of due → its publish time (ms)
//	<prefix>:{<prefix>:q<i>}:prep    HASH  id → its pushes (a chunk's stored form); id:e → its encoded messages; id:w → withdrawn since; # → last id
//	<prefix>:{<prefix>:q<i>}:held    HASH  "user_id:template_id" of a prepared item → id of its chunk, until forgotten
//
// Keys that span queues (no script touches them together with a queue key):
//
//	<prefix>:next   ZSET  queue index → earliest time it has work (due user, expired or orphaned flight)
//	<prefix>:paused STRING present while operators have paused emitting
//	<prefix>:layout HASH  the current layout and the progress of a move (see layout.go)
type queueKeys struct {
	due, items, flight, marks, dead, lease, epoch, moving string
	ready, prep, held                                     string
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
	}
}

func (c *Client) nextKey() string   { return c.prefix + ":next" }
func (c *Client) pausedKey() string { return c.prefix + ":paused" }
func (c *Client) layoutKey() string { return c.prefix + ":layout" }
