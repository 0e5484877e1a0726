# Shared by the Redis service scripts (sourced; not an event script).
# Everything to configure is here, overridden in ./redis.conf.sh next to the
# scripts (sourced if present):
#   REDIS_BIND           addresses redis-server listens on (default: all)
#   REDIS_PORT           its port (default 6379)
#   REDIS_DIR            data and pid directory (default /var/lib/koi-redis)
#   REDIS_PASSWORD_FILE  a file holding the password: requirepass and
#                        masterauth (default: none — then listen only on a
#                        network you trust)
#   REDIS_PERSIST        aof (default: append-only file, fsync every second),
#                        rdb (snapshots) or none
#   REDIS_MIN_REPLICAS   a master takes writes only while this many replicas
#                        are connected and recent (default 1): a master cut
#                        off from every replica stops taking writes
#   REDIS_MIN_REPLICAS_MAX_LAG  seconds a replica may lag and still count (10)
#   REDIS_MAX_LAG        replication bytes a replica may be behind a master
#                        that answers and still be promotable (default 1 MiB)
#   NODES_FILE           lines "NAME HOST PORT" for every node (default ./nodes)
REDIS_BIND="* -::*"
REDIS_PORT=6379
REDIS_DIR=/var/lib/koi-redis
REDIS_PASSWORD_FILE=
REDIS_PERSIST=aof
REDIS_MIN_REPLICAS=1
REDIS_MIN_REPLICAS_MAX_LAG=10
REDIS_MAX_LAG=1048576
NODES_FILE=./nodes
[ -f ./redis.conf.sh ] && . ./redis.conf.sh
. ../koi-service.sh 2>/dev/null || . "$(dirname "$0")/../koi-service.sh" 2>/dev/null || {
  KOI_IS_MASTER=90; KOI_IS_SLAVE=91; KOI_IS_STOPPED=92; KOI_NOT_PROMOTABLE=93
  koi_fail() { printf 'error: %s\n' "$*" >&2; exit 1; }
}

# The password reaches redis-cli through its environment, never its command line.
if [ -n "$REDIS_PASSWORD_FILE" ]; then
  [ -r "$REDIS_PASSWORD_FILE" ] || koi_fail "cannot read REDIS_PASSWORD_FILE $REDIS_PASSWORD_FILE"
  REDISCLI_AUTH="$(cat "$REDIS_PASSWORD_FILE")"
  export REDISCLI_AUTH
fi

# -e: an error reply fails the command (redis-cli exits 0 on errors without it).
rcli() { redis-cli -e -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
# The same against another node's Redis.
rcli_at() { h="$1"; p="$2"; shift 2; redis-cli -e -h "$h" -p "$p" "$@"; }
running() { rcli PING 2>/dev/null | grep -q PONG; }
role() { rcli ROLE 2>/dev/null | head -1; }
# One field of INFO replication (of this node's Redis, or of HOST PORT).
repl() { rcli INFO replication 2>/dev/null | tr -d '\r' | awk -F: -v k="$1" '$1 == k { print $2 }'; }
repl_at() { rcli_at "$1" "$2" INFO replication 2>/dev/null | tr -d '\r' | awk -F: -v k="$3" '$1 == k { print $2 }'; }
# "HOST PORT" of a node from the nodes file.
address_of() { awk -v n="$1" '$1 == n { print $2, $3 }' "$NODES_FILE"; }

# Replicate from the current master when it is another node; with no master
# known, from nobody reachable: a read-only replica takes no stray writes.
# Fails when Redis refuses.
follow_master() {
  if [ -n "${KOI_MASTER:-}" ] && [ "$KOI_MASTER" != "$KOI_NODE" ]; then
    set -- $(address_of "$KOI_MASTER")
    [ -n "${1:-}" ] || { echo "no address for $KOI_MASTER in $NODES_FILE" >&2; return 1; }
    [ "$(repl master_host) $(repl master_port)" = "$1 $2" ] && return 0
    rcli REPLICAOF "$1" "$2" >/dev/null || return 1
  else
    [ "$(repl master_host) $(repl master_port)" = "127.0.0.1 1" ] && return 0
    rcli REPLICAOF 127.0.0.1 1 >/dev/null || return 1
  fi
  [ "$(role)" = slave ]
}
