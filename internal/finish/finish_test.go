package finish

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDo(t *testing.T) {
	t.Run("returns the step's error", func(t *testing.T) {
		var g Group
		want := errors.New("step failed")
		if err := g.Do(context.Background(), func(context.Context) error { return want }); !errors.Is(err, want) {
			t.Fatalf("Do = %v, want %v", err, want)
		}
	})
	t.Run("completes after the caller's end", func(t *testing.T) {
		var g Group
		ctx, cancel := context.WithCancel(context.Background())
		release, finished := make(chan struct{}), make(chan error, 1)
		go func() {
			<-release
			cancel()
		}()
		err := g.Do(ctx, func(sctx context.Context) error {
			close(release)
			select { // the caller ends; this step must not see it
			case <-sctx.Done():
				finished <- sctx.Err()
			case <-time.After(100 * time.Millisecond):
				finished <- nil
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Do = %v, want the caller's cancel", err)
		}
		g.Wait()
		if err := <-finished; err != nil {
			t.Fatalf("the step saw %v after the caller ended", err)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		g := Group{Timeout: 50 * time.Millisecond}
		err := g.Do(context.Background(), func(sctx context.Context) error {
			<-sctx.Done()
			return sctx.Err()
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Do = %v, want the bound's deadline", err)
		}
	})
}
