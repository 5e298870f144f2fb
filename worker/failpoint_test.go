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
		{"crash after prepare", "crash-after-prepare:2", true, true},
		{"clock skew", "clock-skew:2000", true, true},
		{"no skew", "clock-skew:0", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.set {
				t.Setenv(FailpointEnv, tc.value)
			}
			// Never called: calling an armed hook 5 times would kill the test binary.
			h := failpoints(slog.New(slog.DiscardHandler))
			if got := armed(h); got != tc.armed {
				t.Fatalf("armed = %v, want %v", got, tc.armed)
			}
		})
	}
}

// armed reports whether h arms any fault.
func armed(h failpointHooks) bool {
	return h.beforeAck != nil || h.beforePublish != nil || h.afterPrepare != nil || h.clockSkew != 0
}
