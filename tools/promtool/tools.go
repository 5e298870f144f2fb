//go:build tools

// Package tools pins the promtool version that scripts/engines.sh builds for
// the monitoring tests (`promtool check rules`, `promtool test rules`). It is
// a module of its own so the project's go.mod does not carry Prometheus's
// dependencies.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
