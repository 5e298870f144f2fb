#!/usr/bin/env bash
# run.sh: the whole reminder cluster on this machine, on loopback.
#
# Installs what is missing (scripts/engines.sh install), starts Redis,
# MariaDB, nsqd and Consul (reusing COUPONPUSH_* engines already given in the
# environment), two workers (HTTP on 127.0.0.1:8080 and :8081), the reference
# message-center consumer, and a demo: one template and a few thousand
# subscriptions whose pushes arrive about a minute later. Ctrl-C stops
# everything it started.
#
#   DEMO_USERS=3000 DEMO_IN=45s scripts/run.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/couponpush
DIR=$CACHE/run/local
BIN=$DIR/bin
DEMO_USERS=${DEMO_USERS:-3000}
DEMO_IN=${DEMO_IN:-45s}
HTTP1=${HTTP1:-127.0.0.1:8080}
HTTP2=${HTTP2:-127.0.0.1:8081}
OPS1=${OPS1:-127.0.0.1:9090}
OPS2=${OPS2:-127.0.0.1:9091}

say() { printf 'run: %s\n' "$*"; }

scripts/engines.sh install
mkdir -p "$DIR" "$BIN"

pids=()
cleanup() {
	# Finish even if the terminal goes away or Ctrl-C is pressed again.
	trap '' INT TERM HUP
	trap - EXIT
	say "stopping"
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	scripts/engines.sh stop "$DIR" || true
}
trap cleanup INT TERM EXIT

scripts/engines.sh start "$DIR"
# shellcheck disable=SC1091
source "$DIR/env"

say "building worker, consumer and demo"
go build -o "$BIN/worker" ./cmd/worker
go build -o "$BIN/consumer" ./cmd/consumer
go build -o "$BIN/demo" ./cmd/demo

export COUPONPUSH_MYSQL_DSN="${COUPONPUSH_MYSQL_DSN%/}/couponpush?parseTime=true"
export COUPONPUSH_TOPIC=${COUPONPUSH_TOPIC:-coupon_push}

# Identity: a fresh operator token and HS256 secret in the run directory,
# given to the workers by file (never on the command line) and to the demo,
# which signs each user's token with the secret.
umask 077
head -c 32 /dev/urandom | base64 | tr -d '/+=\n' >"$DIR/operator-token"
head -c 48 /dev/urandom | base64 | tr -d '/+=\n' >"$DIR/jwt-secret"
umask 022
export COUPONPUSH_OPERATOR_TOKENS_FILE=$DIR/operator-token
export COUPONPUSH_JWT_HS256_SECRET_FILE=$DIR/jwt-secret
# Rate limits stay on, per user as in production; but every demo user
# comes from 127.0.0.1, so the per-IP limit of subscription writes (300/s,
# meant for the many users behind one NAT) is raised for this local run.
export COUPONPUSH_LIMIT_SUBSCRIBE_IP_RATE=${COUPONPUSH_LIMIT_SUBSCRIBE_IP_RATE:-100000}
export COUPONPUSH_LIMIT_SUBSCRIBE_IP_BURST=${COUPONPUSH_LIMIT_SUBSCRIBE_IP_BURST:-100000}

"$BIN/consumer" -nsqd "$COUPONPUSH_NSQD_TCP" -topic "$COUPONPUSH_TOPIC" -quiet &
pids+=($!)
"$BIN/worker" -http-addr "$HTTP1" -ops-addr "$OPS1" -worker-id local-1 > >(sed -u 's/^/[worker-1] /') 2>&1 &
pids+=($!)
"$BIN/worker" -http-addr "$HTTP2" -ops-addr "$OPS2" -worker-id local-2 > >(sed -u 's/^/[worker-2] /') 2>&1 &
pids+=($!)

for a in "$HTTP1" "$HTTP2"; do
	for _ in $(seq 1 300); do
		curl -fsS "http://$a/readyz" >/dev/null 2>&1 && break
		sleep 0.2
	done
	curl -fsS "http://$a/readyz" >/dev/null || { say "worker on $a is not ready"; exit 1; }
done
say "workers ready on http://$HTTP1 and http://$HTTP2, ops (/metrics) on http://$OPS1 and http://$OPS2 (Consul UI: http://$COUPONPUSH_CONSUL_ADDR/ui)"
say "operator token: $DIR/operator-token (curl -H \"Authorization: Bearer \$(cat $DIR/operator-token)\" ...)"

"$BIN/demo" -api "http://$HTTP1,http://$HTTP2" -users "$DEMO_USERS" -in "$DEMO_IN" \
	-operator-token-file "$DIR/operator-token" -jwt-secret-file "$DIR/jwt-secret"
say "watching the consumer's summary lines; Ctrl-C stops everything"
wait "${pids[0]}"
