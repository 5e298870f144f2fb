//go:build tools

// Package tools pins the consul version that scripts/engines.sh builds for
// local runs and tests. It is a module of its own so the project's go.mod
// does not carry consul's dependencies.
package tools

import _ "github.com/hashicorp/consul"
