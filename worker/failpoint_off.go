//go:build !failpoint

package worker

import "log/slog"

// failpoints are none: this binary was built without -tags failpoint, so
// FailpointEnv is ignored.
func failpoints(*slog.Logger) failpointHooks { return failpointHooks{} }
