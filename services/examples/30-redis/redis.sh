# Shared by the Redis service scripts (sourced; not an event script).
# Configuration, in ./redis.conf.sh next to the scripts (sourced if present):
#   REDIS_PORT   port of this node's Redis (default 6379)
#   REDIS_DIR    data and pid directory (default /var/lib/koi-redis)
#   NODES_FILE   lines "NAME HOST PORT" for every node (default ./nodes)
REDIS_PORT=6379
REDIS_DIR=/var/lib/koi-redis
NODES_FILE=./nodes
[ -f ./redis.conf.sh ] && . ./redis.conf.sh
. ../koi-service.sh 2>/dev/null || . "$(dirname "$0")/../koi-service.sh" 2>/dev/null || {
  KOI_IS_MASTER=90; KOI_IS_SLAVE=91; KOI_IS_STOPPED=92; KOI_NOT_PROMOTABLE=93
}

rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
running() { rcli PING 2>/dev/null | grep -q PONG; }
role() { rcli ROLE 2>/dev/null | head -1; }
# "HOST PORT" of a node from the nodes file.
address_of() { awk -v n="$1" '$1 == n { print $2, $3 }' "$NODES_FILE"; }
# Follow the current master when it is another node; with no master known,
# follow nobody reachable: a read-only replica cannot take stray writes.
follow_master() {
  if [ -n "${KOI_MASTER:-}" ] && [ "$KOI_MASTER" != "$KOI_NODE" ]; then
    set -- $(address_of "$KOI_MASTER")
    [ -n "${1:-}" ] || { echo "no address for $KOI_MASTER in $NODES_FILE" >&2; return 1; }
    current="$(rcli INFO replication | tr -d '\r' | awk -F: '/^master_host|^master_port/ { printf "%s ", $2 }')"
    [ "$current" = "$1 $2 " ] || rcli REPLICAOF "$1" "$2" >/dev/null
  else
    rcli REPLICAOF 127.0.0.1 1 >/dev/null
  fi
}
