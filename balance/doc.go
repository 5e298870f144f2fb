// Package balance decides which worker works which reminder queue.
//
// Each pick does INCR on one shared counter and takes counter mod len(due)
// as the first queue to try among the queues that have work, so concurrent
// workers fan out over different queues instead of all trying the earliest
// one. The counter only spreads; exclusivity comes from the queue's lease
// (SET NX PX with a random token, see queue.Client.Acquire), which the
// holder renews while it works and which fences every script it runs.
// A worker that dies stops renewing, so its queues are free again within
// one lease time.
package balance
