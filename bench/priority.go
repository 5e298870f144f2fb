package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"couponpush/client"
	"couponpush/queue"
)

// reportPriority measures the priority scenario: k high and k low
// reminders due at one millisecond on a stack of one worker with one slot
// (a cluster far short of its speed), users interleaved so that every
// queue holds both. It reports when the last high push and the low ones
// came out at the consumer, by arrival order and time after due.
func (s *stack) reportPriority(ctx context.Context, k int, out io.Writer) error {
	settled := settle(ctx)
	due := time.Now().Add(5*time.Second + s.ahead + s.seedRoom(2*k)).Truncate(time.Second)
	high, err := s.templateOf(ctx, due, client.PriorityHigh)
	if err != nil {
		return err
	}
	low, err := s.templateOf(ctx, due, client.PriorityLow)
	if err != nil {
		return err
	}
	col, err := s.meter(2 * k)
	if err != nil {
		return err
	}
	defer col.stop()
	const from = 20_000_001                     // odd users high, even low
	base, markBase := s.published(), s.marked() // before the seeding, as in burst
	rate, err := s.load(ctx, from, 2*k, func(u int) queue.Entry {
		if u%2 == 1 {
			return queue.Entry{TemplateID: high, PushAt: due, Priority: queue.PriorityHigh}
		}
		return queue.Entry{TemplateID: low, PushAt: due, Priority: queue.PriorityLow}
	})
	if err != nil {
		return err
	}
	if time.Now().After(due) {
		return fmt.Errorf("loading %d reminders took past their due time (seeded at %.0f/s); lower -priority or -seed-rate", 2*k, rate)
	}
	// The consumer decodes once the drain is over, as in burst.
	if err := s.waitPublished(base, 2*k, due); err != nil {
		return err
	}
	if _, err := col.wait(2 * k); err != nil { // every push once, none lost
		return err
	}
	users, late := col.arrivals()
	lastHigh, lows := -1, make([]int, 0, k)
	for i, u := range users {
		if u%2 == 1 {
			lastHigh = i
		} else {
			lows = append(lows, i)
		}
	}
	if lastHigh < 0 || len(lows) != k {
		return fmt.Errorf("consumer saw %d low pushes of %d, and high ones: %v", len(lows), k, lastHigh >= 0)
	}
	median := lows[len(lows)/2]
	fmt.Fprintf(out, "\npriority: %d high and %d low reminders due at one millisecond, one worker with one slot, %d queues (seeded at %.0f/s)\n", k, k, s.queues, rate)
	fmt.Fprintf(out, "  seeded once %s\n", settled)
	fmt.Fprintf(out, "  last high push         arrival %d of %d, %v after due\n", lastHigh+1, len(users), late[lastHigh].Round(time.Millisecond))
	fmt.Fprintf(out, "  median low push        arrival %d, %v after due\n", median+1, late[median].Round(time.Millisecond))
	fmt.Fprintf(out, "  last low push          arrival %d, %v after due; all %d low pushes arrived once\n", lows[len(lows)-1]+1, late[lows[len(lows)-1]].Round(time.Millisecond), k)
	verdict := "yes"
	if lastHigh > median {
		verdict = "NO"
	}
	fmt.Fprintf(out, "  every high push before the low ones' median: %s\n", verdict)
	for s.marked()-markBase < int64(2*k) {
		if time.Since(due) > 5*time.Minute {
			return fmt.Errorf("only %d of %d sent-marks in MySQL after 5 minutes", s.marked()-markBase, 2*k)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
