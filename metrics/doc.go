// Package metrics is a small Prometheus registry with no dependencies.
//
// A Registry holds counters, gauges, histograms and gauge functions, each
// optionally split by labels whose names are fixed when the metric is
// created. Updates are lock-free atomics; looking up a labelled child takes a
// read lock on a small map, so hot paths should keep the child returned by
// With instead of looking it up on every call.
//
// Registry.Handler serves the text exposition format 0.0.4: one HELP and TYPE
// line per metric, families sorted by name and series by label values, so two
// scrapes of an unchanged registry are byte for byte the same.
//
// Registration mistakes (a duplicate or invalid name, the wrong number of
// label values) are programming errors and panic, like
// prometheus.MustRegister; nothing on the hot path panics except a counter
// asked to go down.
package metrics
