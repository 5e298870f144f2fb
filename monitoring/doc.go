// Package monitoring holds the Grafana dashboard and the Prometheus alerting
// rules of couponpush, as files, and the tests that keep them true:
//
//   - grafana/couponpush.json: the dashboard (import it, pick the Prometheus
//     data source in its `datasource` variable);
//   - prometheus/alerts.yml: the alerting rules, each with a unit test file
//     prometheus/tests/<alertname>.test.yml run by `promtool test rules`;
//   - prometheus/prometheus.yml: an example Prometheus configuration that
//     finds the workers through Consul and loads the rules.
//
// docs/operations.md (Monitoring) says how to load them and holds the
// runbooks the rules point to.
//
// # Invariants the tests keep
//
//   - promtool (built by `scripts/engines.sh install` from the version pinned
//     in tools/promtool/go.mod) accepts the rules, the configuration and
//     every dashboard expression, and every rule's test file passes; a test
//     fails, never skips, when promtool is missing.
//   - Every rule has a severity, a summary, a description and a runbook that
//     names a section of docs/operations.md, and a test file with a case
//     where it fires and one where it does not.
//   - The dashboard fits Grafana's schema (the Grafana Foundation SDK's
//     strict decoding); every panel has a unique id and title and reads the
//     `datasource` variable.
//   - Every metric the dashboard or the rules name is exported by a real
//     worker: the test starts one with every role on the real engines,
//     drives a small drop, scrapes /metrics and compares the names.
//
// MetricNames is the one place expressions are read for metric names; it
// uses a real PromQL parser (MetricsQL's, a superset of PromQL), so the
// project's go.mod does not carry Prometheus itself.
package monitoring
