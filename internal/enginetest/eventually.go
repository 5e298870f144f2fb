package enginetest

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds and fails the test if it does not
// within limit: the way to wait for something asynchronous, instead of a
// sleep that only hopes.
func Eventually(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		<-tick.C
	}
}
