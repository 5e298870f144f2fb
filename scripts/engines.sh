#!/usr/bin/env bash
# engines.sh: install, start and stop the engines couponpush runs against
# (Redis, MariaDB, nsqd, Consul) on loopback, for `make test` and local runs.
#
#   scripts/engines.sh install     apt-get redis-server/mariadb-server/chromium if missing,
#                                  build nsqd, consul and promtool into the cache if missing
#   scripts/engines.sh start DIR   start all four under DIR, write DIR/env
#   scripts/engines.sh stop DIR    stop exactly what `start DIR` started
#
# Binaries built from the module proxy live in
# ${COUPONPUSH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/couponpush/bin}, named by
# version, so a fresh clone on the same machine reuses them. The versions are
# read from tools/*/go.mod; internal/enginetest reads the same files.
#
# start: an engine whose COUPONPUSH_* variables are already set in the
# environment is not started; its address is copied into DIR/env as is. An
# engine already running from an earlier `start DIR` is kept.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${COUPONPUSH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/couponpush/bin}

say() { printf 'engines: %s\n' "$*"; }
die() { printf 'engines: error: %s\n' "$*" >&2; exit 1; }

# tool_version MODULE GOMOD prints the version of MODULE required by GOMOD, without the v.
tool_version() {
	local v
	v=$(grep -Eo "$1 v[0-9][^ ]*" "$2" | head -n1 | cut -d' ' -f2) || true
	[[ -n $v ]] || die "cannot find $1 in $2"
	echo "${v#v}"
}
NSQD_VERSION=$(tool_version github.com/nsqio/nsq "$ROOT/tools/nsqd/go.mod")
CONSUL_VERSION=$(tool_version github.com/hashicorp/consul "$ROOT/tools/consul/go.mod")
NSQD=$BIN/nsqd-$NSQD_VERSION
CONSUL=$BIN/consul-$CONSUL_VERSION
# promtool (for the monitoring tests) is versioned by the Prometheus module:
# v0.316.0 is Prometheus 3.16.0.
PROMTOOL_VERSION=$(tool_version github.com/prometheus/prometheus "$ROOT/tools/promtool/go.mod")
PROMTOOL=$BIN/promtool-$PROMTOOL_VERSION

# find_sbin NAME prints the path of NAME, also looking in the sbin
# directories a non-root PATH often lacks (mariadbd is in /usr/sbin).
find_sbin() {
	command -v "$1" 2>/dev/null && return 0
	local d
	for d in /usr/sbin /usr/local/sbin /sbin; do
		[[ -x $d/$1 ]] && { echo "$d/$1"; return 0; }
	done
	return 1
}

# ---------------------------------------------------------------- install

sudo_cmd() {
	if [[ $EUID -eq 0 ]]; then "$@"
	elif command -v sudo >/dev/null; then sudo "$@"
	else die "need root (or sudo) to run: $*"
	fi
}

apt_updated=
apt_install() { # PACKAGE
	if [[ -z $apt_updated ]]; then
		say "apt-get update"
		sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
		apt_updated=1
	fi
	say "apt-get install $1"
	sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}

# build_tool NAME MODDIR PKG OUT NOTE [TAGS] builds PKG in the tool module MODDIR
# into OUT (with build tags TAGS, if given), through a temporary name, so an
# interrupted build leaves no broken binary.
build_tool() {
	local name=$1 moddir=$2 pkg=$3 out=$4 note=$5 tags=${6:-} tmp start f
	if [[ -x $out ]]; then
		say "$name: cached at $out"
		return 0
	fi
	# Temporary files of builds whose script died (the name ends in its pid).
	for f in "$out".tmp.*; do
		[[ -e $f ]] && ! kill -0 "${f##*.}" 2>/dev/null && rm -f "$f"
	done
	command -v go >/dev/null || die "go is needed to build $name"
	mkdir -p "$(dirname "$out")"
	tmp="$out.tmp.$$"
	say "$name: building $pkg into $out ($note)"
	start=$SECONDS
	trap 'rm -f "$tmp"' EXIT
	(cd "$moddir" && go build ${tags:+-tags "$tags"} -o "$tmp" "$pkg") || die "$name: build failed"
	mv -f "$tmp" "$out"
	trap - EXIT
	say "$name: built in $((SECONDS - start))s"
}

cmd_install() {
	local p
	if p=$(find_sbin redis-server) && command -v redis-cli >/dev/null; then
		say "redis-server: present at $p"
	else
		apt_install redis-server
		# The package starts a system-wide server on 6379; the project never uses it.
	fi
	if p=$(find_sbin mariadbd) && find_sbin mariadb-install-db >/dev/null && command -v mariadb >/dev/null; then
		say "mariadbd: present at $p"
	else
		apt_install mariadb-server
	fi
	# The console's browser test (console/browser_test.go) drives a
	# headless Chromium; the test fails without it.
	if p=$(command -v chromium); then
		say "chromium: present at $p"
	else
		apt_install chromium
	fi
	build_tool "nsqd $NSQD_VERSION" "$ROOT/tools/nsqd" github.com/nsqio/nsq/apps/nsqd "$NSQD" "under a minute"
	build_tool "consul $CONSUL_VERSION" "$ROOT/tools/consul" github.com/hashicorp/consul "$CONSUL" "~8 min on 2 cores with a cold Go cache"
	# Without the service discovery plugins the tests do not use (cloud SDKs):
	# Consul's is kept for monitoring/prometheus/prometheus.yml.
	build_tool "promtool $PROMTOOL_VERSION" "$ROOT/tools/promtool" github.com/prometheus/prometheus/cmd/promtool "$PROMTOOL" \
		"~7 min on a busy 2-core machine with a cold Go cache" remove_all_sd,enable_consul_sd
}

# ---------------------------------------------------------------- ports

# free_port sets PORT to a loopback TCP port nobody listens on, chosen at random
# below the kernel's ephemeral range so outgoing connections cannot take it
# before the engine binds it. Ports handed out by this run are never reused.
declare -A TAKEN=()
free_port() {
	local lo=10000 hi=32768 p i
	if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
		read -r hi _ </proc/sys/net/ipv4/ip_local_port_range
	fi
	((hi - lo >= 1000)) || { lo=1025; hi=$((lo + 5000)); }
	for ((i = 0; i < 500; i++)); do
		p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo)))
		[[ -z ${TAKEN[$p]:-} ]] || continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			TAKEN[$p]=1
			PORT=$p
			return 0
		fi
	done
	die "no free loopback port found in $lo-$hi"
}

# ---------------------------------------------------------------- processes

# start_time PID prints the start time of PID (clock ticks since boot), which
# tells a recorded process apart from a later one that reused its pid.
start_time() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	# shellcheck disable=SC2086
	set -- $s
	[[ $1 != Z && $1 != X ]] || return 1
	echo "${20}"
}

# alive NAME: the process recorded in DIR/NAME.pid is still the one we started.
alive() {
	local pid st now
	[[ -f $DIR/$1.pid ]] || return 1
	read -r pid st <"$DIR/$1.pid"
	now=$(start_time "$pid") || return 1
	[[ $now == "$st" ]]
}

# spawn NAME CMD... starts CMD detached (own session, stdin closed, output
# in DIR/NAME.log) and records its pid and start time in DIR/NAME.pid.
spawn() {
	local name=$1 pid st
	shift
	setsid "$@" </dev/null >>"$DIR/$name.log" 2>&1 &
	pid=$!
	st=$(start_time "$pid") || st=gone
	echo "$pid $st" >"$DIR/$name.pid"
	STARTED+=("$name")
}

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

# wait_ready NAME SECONDS WHAT CHECK... polls CHECK until it succeeds, the
# process dies, or SECONDS pass. It returns 1 if the engine died because
# another process took its port since free_port probed it (the caller picks
# new ports and tries again, up to ATTEMPT 3); on any other failure it stops
# what this run started and exits.
wait_ready() {
	local name=$1 limit=$2 what=$3 t0=$SECONDS ms0
	shift 3
	ms0=$(now_ms)
	until "$@" >/dev/null 2>&1; do
		if ! alive "$name"; then
			if ((ATTEMPT < 3)) && tail -n 20 "$DIR/$name.log" | grep -qi 'already in use'; then
				say "$name: a port on $what was taken meanwhile; trying other ports"
				return 1
			fi
			fail_start "$name exited before answering on $what"
		fi
		if ((SECONDS - t0 >= limit)); then
			fail_start "$name did not answer on $what within ${limit}s"
		fi
		sleep 0.05
	done
	say "$name: ready on $what in $(($(now_ms) - ms0)) ms (pid $(cut -d' ' -f1 "$DIR/$name.pid"), log $DIR/$name.log)"
}

fail_start() {
	local name=${1%% *}
	{
		printf 'engines: error: %s; last lines of %s:\n' "$1" "$DIR/$name.log"
		tail -n 20 "$DIR/$name.log" 2>/dev/null | sed 's/^/    /'
	} >&2
	local n
	for n in "${STARTED[@]}"; do stop_one "$n" || true; done
	exit 1
}

# http_get PORT PATH prints the body of GET http://127.0.0.1:PORT/PATH if it
# answers 200, using bash's /dev/tcp (no curl on a fresh Debian).
http_get() {
	local line body= ok=
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
	IFS= read -r -t 5 line <&3 || { exec 3<&-; return 1; }
	[[ $line == HTTP/1.[01]\ 200* ]] && ok=1
	while IFS= read -r -t 5 line <&3 && [[ $line != $'\r' ]]; do :; done
	body=$(cat <&3)
	exec 3<&-
	[[ -n $ok ]] || return 1
	printf '%s' "$body"
}

nsqd_ping() { [[ $(http_get "$1" /ping) == OK ]]; }
consul_leader() { local l; l=$(http_get "$1" /v1/status/leader) && [[ $l == \"?* && $l != '""' ]]; }
redis_ping() { [[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]; }
mariadb_ping() { "$MARIADB" --no-defaults --protocol=TCP -h127.0.0.1 -P"$1" -uroot -e 'SELECT 1'; }

# ---------------------------------------------------------------- engines

start_redis() {
	if [[ -n ${COUPONPUSH_REDIS_ADDR:-} ]]; then
		say "redis: using COUPONPUSH_REDIS_ADDR=$COUPONPUSH_REDIS_ADDR"
		echo "export COUPONPUSH_REDIS_ADDR='$COUPONPUSH_REDIS_ADDR'" >"$DIR/redis.env"
		return
	fi
	if alive redis; then say "redis: already running ($(cat "$DIR/redis.env"))"; return; fi
	local bin
	bin=$(find_sbin redis-server) || die "redis-server missing; run scripts/engines.sh install"
	for ATTEMPT in 1 2 3; do
		free_port
		mkdir -p "$DIR/redis"
		spawn redis "$bin" --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
			--dir "$DIR/redis" --daemonize no --logfile '' --maxclients 10000
		wait_ready redis 20 "127.0.0.1:$PORT" redis_ping "$PORT" && break
	done
	echo "export COUPONPUSH_REDIS_ADDR='127.0.0.1:$PORT'" >"$DIR/redis.env"
}

# mariadb_template MARIADBD INSTALL_DB prints a data directory made by
# mariadb-install-db (root with no password over TCP), made once per machine
# and MariaDB version: install takes seconds, a copy a fraction of one. It is
# the same cache directory internal/enginetest uses (key: the first 16 hex
# digits of sha256 of "<mariadbd path>\n<mariadbd --version output>").
mariadb_template() {
	local bin=$1 install=$2 root key tmp user=()
	root=${XDG_CACHE_HOME:-$HOME/.cache}/couponpush/mariadb-template
	key=$({ printf '%s\n' "$bin"; "$bin" --version; } | sha256sum | cut -c1-16)
	if [[ ! -d $root/$key/data/mysql ]]; then
		say "mariadb: making the template data directory $root/$key (once per MariaDB version)" >&2
		[[ $EUID -ne 0 ]] || user=(--user=root)
		mkdir -p "$root"
		tmp=$(mktemp -d "$root/tmp-XXXXXX")
		"$install" --no-defaults --datadir="$tmp/data" "${user[@]}" --auth-root-authentication-method=normal \
			--skip-test-db --skip-name-resolve >"$tmp/install.log" 2>&1 ||
			{ tail -n 20 "$tmp/install.log" >&2; rm -rf "$tmp"; die "mariadb-install-db failed"; }
		# Another run may have won the race; either copy is good.
		mv -T "$tmp" "$root/$key" 2>/dev/null || rm -rf "$tmp"
	fi
	echo "$root/$key/data"
}

start_mariadb() {
	if [[ -n ${COUPONPUSH_MYSQL_DSN:-} ]]; then
		say "mariadb: using COUPONPUSH_MYSQL_DSN=$COUPONPUSH_MYSQL_DSN"
		echo "export COUPONPUSH_MYSQL_DSN='$COUPONPUSH_MYSQL_DSN'" >"$DIR/mariadb.env"
		return
	fi
	if alive mariadb; then say "mariadb: already running ($(cat "$DIR/mariadb.env"))"; return; fi
	local bin install fs data sock tmpl user=()
	bin=$(find_sbin mariadbd) || die "mariadbd missing; run scripts/engines.sh install"
	install=$(find_sbin mariadb-install-db) || die "mariadb-install-db missing; run scripts/engines.sh install"
	MARIADB=$(find_sbin mariadb) || die "mariadb client missing; run scripts/engines.sh install"
	fs=$(stat -f -c %T "$DIR")
	[[ $fs != tmpfs && $fs != ramfs ]] ||
		die "$DIR is on $fs; MariaDB data must be on disk for durability (use a directory under \$HOME)"
	[[ $EUID -ne 0 ]] || user=(--user=root)
	data=$DIR/mariadb
	if [[ ! -d $data/mysql ]]; then
		tmpl=$(mariadb_template "$bin" "$install")
		rm -rf "$data"
		cp -R "$tmpl" "$data"
	fi
	for ATTEMPT in 1 2 3; do
		free_port
		sock=$data/sock
		((${#sock} < 100)) || sock=/tmp/couponpush-mariadb-$PORT.sock
		spawn mariadb "$bin" --no-defaults --datadir="$data" --socket="$sock" --port="$PORT" \
			--bind-address=127.0.0.1 "${user[@]}" --pid-file="$data/mariadbd.pid" \
			--innodb-flush-log-at-trx-commit=1 --max-connections=1000 --skip-name-resolve \
			--skip-log-bin --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
			--default-time-zone=+00:00 --thread-handling=pool-of-threads --innodb-autoinc-lock-mode=2
		wait_ready mariadb 60 "127.0.0.1:$PORT" mariadb_ping "$PORT" && break
	done
	echo "export COUPONPUSH_MYSQL_DSN='root@tcp(127.0.0.1:$PORT)/'" >"$DIR/mariadb.env"
}

start_nsqd() {
	if [[ -n ${COUPONPUSH_NSQD_TCP:-}${COUPONPUSH_NSQD_HTTP:-} ]]; then
		[[ -n ${COUPONPUSH_NSQD_TCP:-} && -n ${COUPONPUSH_NSQD_HTTP:-} ]] ||
			die "set both COUPONPUSH_NSQD_TCP and COUPONPUSH_NSQD_HTTP, or neither"
		say "nsqd: using COUPONPUSH_NSQD_TCP=$COUPONPUSH_NSQD_TCP COUPONPUSH_NSQD_HTTP=$COUPONPUSH_NSQD_HTTP"
		printf "export COUPONPUSH_NSQD_TCP='%s'\nexport COUPONPUSH_NSQD_HTTP='%s'\n" \
			"$COUPONPUSH_NSQD_TCP" "$COUPONPUSH_NSQD_HTTP" >"$DIR/nsqd.env"
		return
	fi
	if alive nsqd; then say "nsqd: already running ($(tr '\n' ' ' <"$DIR/nsqd.env"))"; return; fi
	[[ -x $NSQD ]] || die "$NSQD missing; run scripts/engines.sh install"
	local tcp http
	for ATTEMPT in 1 2 3; do
		free_port; tcp=$PORT
		free_port; http=$PORT
		mkdir -p "$DIR/nsqd"
		spawn nsqd "$NSQD" --tcp-address="127.0.0.1:$tcp" --http-address="127.0.0.1:$http" \
			--broadcast-address=127.0.0.1 --data-path="$DIR/nsqd"
		wait_ready nsqd 20 "127.0.0.1:$http" nsqd_ping "$http" && break
	done
	printf "export COUPONPUSH_NSQD_TCP='127.0.0.1:%s'\nexport COUPONPUSH_NSQD_HTTP='127.0.0.1:%s'\n" \
		"$tcp" "$http" >"$DIR/nsqd.env"
}

start_consul() {
	if [[ -n ${COUPONPUSH_CONSUL_ADDR:-} ]]; then
		say "consul: using COUPONPUSH_CONSUL_ADDR=$COUPONPUSH_CONSUL_ADDR"
		echo "export COUPONPUSH_CONSUL_ADDR='$COUPONPUSH_CONSUL_ADDR'" >"$DIR/consul.env"
		return
	fi
	if alive consul; then say "consul: already running ($(cat "$DIR/consul.env"))"; return; fi
	[[ -x $CONSUL ]] || die "$CONSUL missing; run scripts/engines.sh install"
	local http serf server
	for ATTEMPT in 1 2 3; do
		free_port; http=$PORT
		free_port; serf=$PORT
		free_port; server=$PORT
		spawn consul "$CONSUL" agent -dev -client=127.0.0.1 -bind=127.0.0.1 -node="couponpush-$http" \
			-http-port="$http" -serf-lan-port="$serf" -server-port="$server" \
			-dns-port=-1 -grpc-port=-1 -grpc-tls-port=-1 -serf-wan-port=-1 -log-level=warn \
			-hcl='disable_update_check = true' -hcl='connect { enabled = false }'
		wait_ready consul 60 "127.0.0.1:$http" consul_leader "$http" && break
	done
	echo "export COUPONPUSH_CONSUL_ADDR='127.0.0.1:$http'" >"$DIR/consul.env"
}

ENGINES=(redis mariadb nsqd consul)

cmd_start() {
	mkdir -p "$DIR"
	DIR=$(cd "$DIR" && pwd)
	STARTED=()
	start_redis
	start_mariadb
	start_nsqd
	start_consul
	local n
	: >"$DIR/env.tmp"
	for n in "${ENGINES[@]}"; do cat "$DIR/$n.env" >>"$DIR/env.tmp"; done
	mv -f "$DIR/env.tmp" "$DIR/env"
	say "wrote $DIR/env"
}

# stop_one NAME stops the process recorded in DIR/NAME.pid if it is still the
# one start launched: SIGTERM, then SIGKILL after 60 s.
stop_one() {
	local name=$1 pid st i
	[[ -f $DIR/$name.pid ]] || return 0
	read -r pid st <"$DIR/$name.pid"
	if ! alive "$name"; then
		say "$name: not running"
		rm -f "$DIR/$name.pid" "$DIR/$name.env"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 1200; i++)); do
		alive "$name" || break
		sleep 0.05
	done
	if alive "$name"; then
		kill -KILL "$pid" 2>/dev/null || true
		say "$name: pid $pid ignored SIGTERM for 60s, killed"
		rm -f "$DIR/$name.pid" "$DIR/$name.env"
		return 1
	fi
	say "$name: stopped pid $pid"
	rm -f "$DIR/$name.pid" "$DIR/$name.env"
}

cmd_stop() {
	[[ -d $DIR ]] || die "$DIR does not exist"
	local n rc=0
	for n in "${ENGINES[@]}"; do stop_one "$n" || rc=1; done
	rm -f "$DIR/env"
	return "$rc"
}

usage() { echo "usage: $0 install | start DIR | stop DIR" >&2; exit 2; }

case ${1:-} in
install) [[ $# -eq 1 ]] || usage; cmd_install ;;
start) [[ $# -eq 2 ]] || usage; DIR=$2; cmd_start ;;
stop) [[ $# -eq 2 ]] || usage; DIR=$2; cmd_stop ;;
*) usage ;;
esac
