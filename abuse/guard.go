package abuse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/batch"
)

// Action is a guarded kind of write.
type Action string

// Actions.
const (
	Claim     Action = "claim"     // POST /v1/templates/{id}/claims
	Subscribe Action = "subscribe" // PUT and DELETE /v1/subscriptions/{user_id}/{template_id}
)

// Actions lists every Action.
var Actions = []Action{Claim, Subscribe}

// Kind is what a limit or a block is keyed by.
type Kind string

// Kinds.
const (
	User Kind = "user" // the user id the request acts for
	IP   Kind = "ip"   // the client IP address
)

// Kinds lists every Kind.
var Kinds = []Kind{User, IP}

// Who placed a block.
type Who string

// Who placed a block.
const (
	Operator Who = "operator" // through the admin API
	Auto     Who = "auto"     // by the guard, for tripping limits
)

// Bounds of a block.
const (
	// MaxBlock is the longest a block may last.
	MaxBlock = 30 * 24 * time.Hour
	// MaxReason is the most characters a block's reason may have.
	MaxReason = 200
	// MaxListed is the most blocks List returns.
	MaxListed = 1000
)

// Sentinel errors.
var (
	// ErrLimited: the request is over a rate limit (a *Refusal says which
	// and when to retry).
	ErrLimited = errors.New("abuse: over a rate limit")
	// ErrBlocked: the caller is blocked (a *Refusal says by which kind).
	ErrBlocked = errors.New("abuse: the caller is blocked")
	// ErrNoBlock: Release found no block in effect.
	ErrNoBlock = errors.New("abuse: no such block")
)

// Refusal is the error Admit returns for a request it turns away; it
// wraps ErrLimited or ErrBlocked.
type Refusal struct {
	Err  error // ErrLimited or ErrBlocked
	Kind Kind  // the limit or block that refused: by user or by IP
	// RetryAfter is when the limit would admit the request (ErrLimited).
	RetryAfter time.Duration
}

func (r *Refusal) Error() string { return r.Err.Error() + " (by " + string(r.Kind) + ")" }

// Unwrap returns ErrLimited or ErrBlocked.
func (r *Refusal) Unwrap() error { return r.Err }

// Subject is who a limit or a block applies to: a user id in decimal, or
// an IP address in canonical form. Build it with UserSubject or IPSubject.
type Subject struct {
	Kind Kind
	ID   string
}

// UserSubject is user id.
func UserSubject(id int64) Subject { return Subject{User, strconv.FormatInt(id, 10)} }

// IPSubject is addr, IPv4-mapped IPv6 addresses as IPv4, without a zone.
func IPSubject(addr netip.Addr) Subject { return Subject{IP, addr.Unmap().WithZone("").String()} }

// Limit is a rate limit: Rate requests a second sustained, up to Burst at
// once.
type Limit struct {
	Rate  int
	Burst int
}

// Rule names one limit: an action by a kind of key.
type Rule struct {
	Action Action
	Kind   Kind
}

// AutoBlock blocks a subject that trips its limits more than Trips times
// within Window, for For.
type AutoBlock struct {
	Trips  int // 0: no automatic blocks
	Window time.Duration
	For    time.Duration
}

// Config configures a Guard.
type Config struct {
	// Prefix starts every key (see keys.go). Required.
	Prefix string
	// Limits are the rate limits; a rule without one is not limited, so
	// nil turns rate limiting off (blocks still apply).
	Limits map[Rule]Limit
	// AutoBlock blocks subjects that keep tripping limits.
	AutoBlock AutoBlock
	// Lease is how long tokens taken ahead for a busy subject may admit
	// its requests locally (lease.go), for a limit whose Rate × Lease is at
	// least 2, which then leaves Rate × Lease of its Burst unused. 0: every
	// request asks Redis. At most MaxLease.
	Lease time.Duration
	// OnLimited, if set, is told of every request refused by a limit.
	OnLimited func(Action, Kind)
	// OnBlocked, if set, is told of every request refused by a block.
	OnBlocked func(Action, Kind)
	// OnLeased, if set, is told of every request a limit admitted from
	// leased tokens, without asking Redis (lease.go).
	OnLeased func(Action, Kind)
	// OnPlaced, if set, is told of every block placed.
	OnPlaced func(Who)
	// Logger receives automatic blocks and failures to count trips;
	// default slog.Default().
	Logger *slog.Logger
}

// Validate reports a config New cannot use.
func (c Config) Validate() error {
	if c.Prefix == "" {
		return errors.New("abuse: config: Prefix is required")
	}
	for r, l := range c.Limits {
		if l.Rate <= 0 || l.Burst <= 0 {
			return fmt.Errorf("abuse: config: limit of %s by %s: rate and burst must be positive, got %+v", r.Action, r.Kind, l)
		}
	}
	if c.Lease < 0 || c.Lease > MaxLease {
		return fmt.Errorf("abuse: config: lease %v is not between 0 and %v", c.Lease, MaxLease)
	}
	for r, l := range c.Limits {
		if err := CheckLease(l, c.Lease); err != nil {
			return fmt.Errorf("abuse: config: limit of %s by %s: %w", r.Action, r.Kind, err)
		}
	}
	if a := c.AutoBlock; a.Trips < 0 || a.Trips > 0 && (a.Window <= 0 || a.For <= 0 || a.For > MaxBlock) {
		return fmt.Errorf("abuse: config: auto block %+v: trips must not be negative; window and block time positive, at most %v", a, MaxBlock)
	}
	return nil
}

// Guard admits or refuses guarded writes and keeps the blocks. It is safe
// for concurrent use.
type Guard struct {
	rdb    redis.UniversalClient
	keys   keys
	cfg    Config
	log    *slog.Logger
	checks *batch.Batcher[check, answer] // Admit's lookups, pipelined together (check.go)
	// Leasing (lease.go): the most tokens one ask of a rule's limit takes
	// (absent: not leased; a leased limit's asks leave Config.Lease of its
	// burst unused).
	leaseCaps map[Rule]int
	leases    *leases
	// firstTTLs are the time to live of firstMark by rule (first.go);
	// absent: the rule's limit always runs its script.
	firstTTLs map[Rule]time.Duration
}

// New returns a Guard on rdb.
func New(rdb redis.UniversalClient, cfg Config) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Guard{rdb: rdb, keys: keys{cfg.Prefix}, cfg: cfg, log: cfg.Logger,
		leaseCaps: make(map[Rule]int), leases: newLeases(cfg.Lease), firstTTLs: make(map[Rule]time.Duration)}
	for r, l := range cfg.Limits {
		if n := leaseCap(l, cfg.Lease); n > 0 {
			g.leaseCaps[r] = n
		} else if d := firstTTL(l); d > 0 {
			g.firstTTLs[r] = d
		}
	}
	g.checks = g.newChecks()
	return g, nil
}

// Admit checks a request of action for user (0: none) from ip (invalid:
// unknown) against the blocks and then the limits, and counts it. It
// returns nil to go ahead, a *Refusal to turn it away, or an error when
// Redis cannot say.
func (g *Guard) Admit(ctx context.Context, a Action, user int64, ip netip.Addr) error {
	subjects := make([]Subject, 0, 2)
	if user > 0 {
		subjects = append(subjects, UserSubject(user))
	}
	if ip.IsValid() {
		subjects = append(subjects, IPSubject(ip))
	}
	if len(subjects) == 0 {
		return nil
	}
	// Each limited subject is admitted from leased tokens, or asks its
	// limit for some, or takes its first token (first.go).
	n := len(subjects)
	c := check{action: a, subjects: subjects, lookup: true, wants: make([]int, n), firsts: make([]bool, n)}
	// An ask of leased tokens not handed to the shared pipelines (an
	// error, a panic) is answered with nothing, so that no other request
	// waits for it; one handed to them is answered by flushChecks.
	handed := false
	defer func() {
		if !handed {
			g.unask(a, subjects, c.wants)
		}
	}()
	for i, s := range subjects {
		r := Rule{a, s.Kind}
		if _, ok := g.cfg.Limits[r]; !ok {
			continue
		}
		switch capped, leased := g.leaseCaps[r]; {
		case leased:
			// want 0: admitted from a leased token, nothing to ask
			want, err := g.leases.admit(ctx, poolKey{r, s.ID}, capped)
			if err != nil {
				return fmt.Errorf("abuse: wait for the leased tokens of %s: %w", s, err)
			}
			c.wants[i] = want
			if want == 0 && g.cfg.OnLeased != nil {
				g.cfg.OnLeased(a, s.Kind)
			}
		case g.firstTTLs[r] > 0:
			c.firsts[i] = true
		default:
			c.wants[i] = 1
		}
	}
	handed = true
	granted, err := g.send(ctx, c)
	if err != nil {
		return fmt.Errorf("abuse: check blocks and limits: %w", err)
	}
	// A first token not taken: the subject has a limit state, which only
	// the script reads, in a round trip of its own (also for a blocked
	// subject: every request counts).
	again := check{action: a, subjects: subjects, wants: make([]int, n)}
	retry := false
	for i := range subjects {
		if c.first(i) && granted.tokens[i] == 0 {
			again.wants[i], retry = 1, true
		}
	}
	if retry {
		more, err := g.send(ctx, again)
		if err != nil {
			return fmt.Errorf("abuse: check limits: %w", err)
		}
		for i := range subjects {
			if again.wants[i] > 0 {
				granted.tokens[i] = more.tokens[i]
			}
		}
	}
	for i, s := range subjects {
		if granted.blocked[i] {
			if g.cfg.OnBlocked != nil {
				g.cfg.OnBlocked(a, s.Kind)
			}
			return &Refusal{Err: ErrBlocked, Kind: s.Kind}
		}
	}
	for i, s := range subjects {
		if c.wants[i] == 0 && !c.first(i) || granted.tokens[i] > 0 {
			continue
		}
		if g.cfg.OnLimited != nil {
			g.cfg.OnLimited(a, s.Kind)
		}
		g.trip(ctx, s)
		return &Refusal{Err: ErrLimited, Kind: s.Kind, RetryAfter: time.Duration(-granted.tokens[i]) * time.Microsecond}
	}
	return nil
}

// send sends c through the shared pipelines and returns its answer (the
// leases record what their asks got in flushChecks, whether or not ctx
// lets send wait for it).
func (g *Guard) send(ctx context.Context, c check) (answer, error) {
	a, err := g.checks.Do(ctx, c)
	if err == nil {
		err = a.err
	}
	return a, err
}

// unask answers the asks of leased tokens that Admit will not send with
// nothing, so that other requests stop waiting for them.
func (g *Guard) unask(a Action, subjects []Subject, wants []int) {
	now := time.Now()
	for i, s := range subjects {
		r := Rule{a, s.Kind}
		if _, ok := g.leaseCaps[r]; ok && wants[i] > 0 {
			g.leases.grant(poolKey{r, s.ID}, wants[i], 0, now, now)
		}
	}
}

// trip counts a tripped limit and blocks s once it has tripped more than
// AutoBlock.Trips times in the window. The request is refused whatever
// happens here, so a failure is logged, not returned.
func (g *Guard) trip(ctx context.Context, s Subject) {
	ab := g.cfg.AutoBlock
	if ab.Trips == 0 {
		return
	}
	n, err := tripScript.Run(ctx, g.rdb, []string{g.keys.trips(s)}, ab.Window.Milliseconds()).Int64()
	if err != nil {
		g.log.WarnContext(ctx, "count a tripped limit", "subject", s.String(), "err", err)
		return
	}
	if n <= int64(ab.Trips) {
		return
	}
	reason := fmt.Sprintf("auto: rate limit tripped %d times in %v", ab.Trips, ab.Window)
	b, placed, err := g.place(ctx, s, ab.For, reason, Auto, false)
	if err != nil {
		g.log.WarnContext(ctx, "place an automatic block", "subject", s.String(), "err", err)
		return
	}
	// The next window starts afresh (a block in effect keeps the subject
	// from tripping meanwhile).
	if err := g.rdb.Del(ctx, g.keys.trips(s)).Err(); err != nil {
		g.log.WarnContext(ctx, "reset a trips counter", "subject", s.String(), "err", err)
	}
	if placed {
		g.log.InfoContext(ctx, "blocked automatically", "kind", s.Kind, "subject", s.ID, "until", b.Until, "reason", reason)
	}
}

// Block is a block in effect.
type Block struct {
	Subject Subject
	Reason  string
	Until   time.Time
	Who     Who
}

// blockValue is a block key's value.
type blockValue struct {
	Reason  string `json:"reason"`
	Who     Who    `json:"who"`
	UntilMs int64  `json:"until_ms"`
}

// Block blocks s for d (1s to MaxBlock) with reason (at most MaxReason
// characters), replacing any block of s in effect.
func (g *Guard) Block(ctx context.Context, s Subject, d time.Duration, reason string) (Block, error) {
	if d < time.Second || d > MaxBlock {
		return Block{}, fmt.Errorf("abuse: block time %v is not between 1s and %v", d, MaxBlock)
	}
	if utf8.RuneCountInString(reason) > MaxReason {
		return Block{}, fmt.Errorf("abuse: block reason is longer than %d characters", MaxReason)
	}
	b, _, err := g.place(ctx, s, d, reason, Operator, true)
	return b, err
}

// place writes a block: the index entry first, then the block key (see
// doc.go). With replace false it leaves a block in effect alone and
// reports placed false.
func (g *Guard) place(ctx context.Context, s Subject, d time.Duration, reason string, who Who, replace bool) (Block, bool, error) {
	till, err := indexAddScript.Run(ctx, g.rdb, []string{g.keys.index()}, s.String(), d.Milliseconds()).Int64()
	if err != nil {
		return Block{}, false, fmt.Errorf("abuse: index the block of %s: %w", s, err)
	}
	v, err := json.Marshal(blockValue{Reason: reason, Who: who, UntilMs: till})
	if err != nil {
		return Block{}, false, fmt.Errorf("abuse: encode the block of %s: %w", s, err)
	}
	placed := true
	if replace {
		err = g.rdb.Set(ctx, g.keys.block(s), v, d).Err()
	} else {
		placed, err = g.rdb.SetNX(ctx, g.keys.block(s), v, d).Result()
	}
	if err != nil {
		return Block{}, false, fmt.Errorf("abuse: write the block of %s: %w", s, err)
	}
	if placed && g.cfg.OnPlaced != nil {
		g.cfg.OnPlaced(who)
	}
	return Block{Subject: s, Reason: reason, Until: time.UnixMilli(till).UTC(), Who: who}, placed, nil
}

// Release ends the block of s; ErrNoBlock if none is in effect. Its index
// entry stays until its end passes (List skips it): removing it could race
// with a block of s placed at the same time and hide that one from List.
func (g *Guard) Release(ctx context.Context, s Subject) error {
	n, err := g.rdb.Del(ctx, g.keys.block(s)).Result()
	if err != nil {
		return fmt.Errorf("abuse: release the block of %s: %w", s, err)
	}
	if n == 0 {
		return ErrNoBlock
	}
	return nil
}

// List returns the blocks in effect, soonest end first, at most MaxListed.
// Index entries without a block (released, or whose block write failed)
// are skipped.
func (g *Guard) List(ctx context.Context) ([]Block, error) {
	members, err := indexListScript.Run(ctx, g.rdb, []string{g.keys.index()}, MaxListed).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("abuse: read the blocks index: %w", err)
	}
	subjects := make([]Subject, 0, len(members))
	for _, m := range members {
		if s, ok := parseSubject(m); ok {
			subjects = append(subjects, s)
		}
	}
	pipe := g.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(subjects))
	for i, s := range subjects {
		gets[i] = pipe.Get(ctx, g.keys.block(s))
	}
	if len(subjects) > 0 {
		_, _ = pipe.Exec(ctx) // each command's own error is checked below
	}
	out := make([]Block, 0, len(subjects))
	for i, s := range subjects {
		raw, err := gets[i].Bytes()
		if errors.Is(err, redis.Nil) { // no block behind the entry
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("abuse: read the block of %s: %w", s, err)
		}
		var v blockValue
		if err := json.Unmarshal(raw, &v); err != nil {
			g.log.WarnContext(ctx, "unreadable block", "subject", s.String(), "err", err)
			continue
		}
		out = append(out, Block{Subject: s, Reason: v.Reason, Until: time.UnixMilli(v.UntilMs).UTC(), Who: v.Who})
	}
	slices.SortStableFunc(out, func(a, b Block) int { return a.Until.Compare(b.Until) })
	return out, nil
}
