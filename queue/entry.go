package queue

import (
	"errors"
	"strconv"
	"time"
)

// Entry is one reminder as the index sees it: who, which template, when, and
// the version of its MySQL row. Versions let the index ignore a stale write
// when a PUT and a DELETE of the same subscription race.
type Entry struct {
	UserID     int64
	TemplateID int64
	PushAt     time.Time // millisecond precision is kept; finer is dropped
	Version    int64     // the MySQL row's version, ≥ 1
	// Priority orders the reminder's push among those due at once (see
	// Priority); the zero value is PriorityNormal. A cancel ignores it.
	Priority Priority
}

// Priority orders pushes when more is due than a worker takes in one go:
// a higher class goes first, then the earlier push time, and each class
// below high waits at most Options.Ageing longer than the one above it
// (an old low push goes before a newer high one), so none starves. A
// user's next push takes the most urgent class of the items it merges.
type Priority int8

// The priorities; the zero value is normal.
const (
	PriorityLow    Priority = -1
	PriorityNormal Priority = 0
	PriorityHigh   Priority = 1
)

// Priorities lists them, most urgent first, as the due sets are kept.
var Priorities = [3]Priority{PriorityHigh, PriorityNormal, PriorityLow}

// Valid reports whether p is one of the priorities.
func (p Priority) Valid() bool { return p >= PriorityLow && p <= PriorityHigh }

// String is p's name as the API spells it: high, normal or low.
func (p Priority) String() string {
	switch p {
	case PriorityHigh:
		return "high"
	case PriorityNormal:
		return "normal"
	case PriorityLow:
		return "low"
	}
	return "Priority(" + strconv.Itoa(int(p)) + ")"
}

// ParsePriority is the Priority named high, normal or low (as String
// spells it); false for any other name.
func ParsePriority(name string) (Priority, bool) {
	for _, p := range Priorities {
		if p.String() == name {
			return p, true
		}
	}
	return PriorityNormal, false
}

// letter is p's class letter in a record (see lua/prelude.lua).
func (p Priority) letter() string {
	switch p {
	case PriorityHigh:
		return "h"
	case PriorityLow:
		return "l"
	}
	return ""
}

// Sentinel errors callers branch on.
var (
	// ErrInFlight means the reminder was already taken from its queue: it is
	// being published or was published, so it can no longer be cancelled.
	ErrInFlight = errors.New("queue: reminder is in flight or sent")
	// ErrLeaseLost means the caller's lease token no longer holds the queue:
	// another worker took it over, so the call changed nothing.
	ErrLeaseLost = errors.New("queue: lease lost")
	// ErrStaleCount means the caller computed the queue from a queue count
	// that is no longer current; it must reload the count and retry.
	ErrStaleCount = errors.New("queue: stale queue count")
	// ErrUserFull means the user holds MaxRemindersPerUser reminders in its
	// queue already: Add indexed nothing.
	ErrUserFull = errors.New("queue: user holds too many reminders")
	// ErrDeadFull means the queue's dead-letter set holds MaxDead pushes:
	// DeadLetter changed nothing and the chunk stays in flight.
	ErrDeadFull = errors.New("queue: dead-letter set is full")
)

// Caps on what one user and one push may carry, and on a queue's dead
// letters. They bound the work of every script and the size of every
// push: DefaultMaxItemsPerPush items of about 110 bytes each stay far
// below nsqd's message size limit.
const (
	// DefaultMaxRemindersPerUser is Options.MaxRemindersPerUser's default.
	DefaultMaxRemindersPerUser = 500
	// DefaultMaxItemsPerPush is PopOptions.MaxItems's default.
	DefaultMaxItemsPerPush = 100
	// DefaultMaxDead is Options.MaxDead's default.
	DefaultMaxDead = 10_000
)
