//go:build !failpoint

package worker

import "log/slog"

// failpoint is nil: this binary was built without -tags failpoint, so
// FailpointEnv is ignored.
func failpoint(*slog.Logger) func() { return nil }
