# Shared by the virtual IP scripts (sourced). Configuration in ./vip.conf.sh:
#   VIP      address with prefix, e.g. 192.0.2.10/24 (required)
#   DEV      interface to put it on, e.g. eth0 (required)
#   NETNS    run inside this network namespace (tests); default: none
[ -f ./vip.conf.sh ] && . ./vip.conf.sh
. ../koi-service.sh 2>/dev/null || { KOI_IS_MASTER=90; KOI_IS_SLAVE=91; KOI_IS_STOPPED=92; }
: "${VIP:?set VIP in vip.conf.sh}" "${DEV:?set DEV in vip.conf.sh}"
ipc() { if [ -n "${NETNS:-}" ]; then ip -n "$NETNS" "$@"; else ip "$@"; fi; }
has_vip() { ipc -o addr show dev "$DEV" | grep -q " ${VIP%/*}/"; }
