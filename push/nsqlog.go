package push

import (
	"context"
	"log/slog"
	"strings"

	"github.com/nsqio/go-nsq"
)

// nsqLogger routes go-nsq's log lines (which it writes to stderr by
// default, often) to a slog logger at debug level.
type nsqLogger struct{ l *slog.Logger }

// Output implements go-nsq's logger interface.
func (n nsqLogger) Output(_ int, s string) error {
	n.l.Debug(strings.TrimSpace(s), "component", "go-nsq")
	return nil
}

// nsqOutput mirrors go-nsq's unexported logger interface.
type nsqOutput interface {
	Output(calldepth int, s string) error
}

// nsqLog returns what to hand go-nsq's SetLogger: nothing (silence) unless
// l takes debug records, in which case go-nsq's lines go there.
func nsqLog(l *slog.Logger) (nsqOutput, nsq.LogLevel) {
	if l.Enabled(context.Background(), slog.LevelDebug) {
		return nsqLogger{l}, nsq.LogLevelDebug
	}
	return nil, nsq.LogLevelMax
}
