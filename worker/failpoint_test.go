//go:build failpoint

package worker

import (
	"log/slog"
	"testing"
)

func TestFailpointArmsOnlyOnAWellFormedValue(t *testing.T) {
	tests := []struct {
		name  string
		value string
		set   bool
		armed bool
	}{
		{"unset", "", false, false},
		{"well formed", "crash-before-ack:5", true, true},
		{"zero", "crash-before-ack:0", true, false},
		{"negative", "crash-before-ack:-1", true, false},
		{"not a number", "crash-before-ack:x", true, false},
		{"stop before publish", "stop-before-publish:3", true, true},
		{"other fault", "crash-after-pop:1", true, false},
		{"no count", "stop-before-publish", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.set {
				t.Setenv(FailpointEnv, tc.value)
			}
			// Never called: calling an armed hook 5 times would kill the test binary.
			h := failpoints(slog.New(slog.DiscardHandler))
			if got := h.beforeAck != nil || h.beforePublish != nil; got != tc.armed {
				t.Fatalf("armed = %v, want %v", got, tc.armed)
			}
		})
	}
}
