# Shared by the virtual IP scripts (sourced). Configuration in ./vip.conf.sh:
#   VIP      address with prefix, e.g. 192.0.2.10/24 or 2001:db8::10/64 (required)
#   DEV      interface to put it on, e.g. eth0 (required)
#   NETNS    run inside this network namespace (tests); default: none
# IPv6: the address is added with `nodad` (usable at once, no duplicate
# address detection delay) unless VIP_DAD=1; neighbours learn it by NDP
# (there is no gratuitous ARP for IPv6).
[ -f ./vip.conf.sh ] && . ./vip.conf.sh
. ../koi-service.sh 2>/dev/null || { KOI_IS_MASTER=90; KOI_IS_SLAVE=91; KOI_IS_STOPPED=92; }
: "${VIP:?set VIP in vip.conf.sh}" "${DEV:?set DEV in vip.conf.sh}"
ipc() { if [ -n "${NETNS:-}" ]; then ip -n "$NETNS" "$@"; else ip "$@"; fi; }
# Fixed-string match: the dots of an IPv4 address are not wildcards.
has_vip() { ipc -o addr show dev "$DEV" | grep -qF " ${VIP%/*}/"; }
is_ipv6() { case "$VIP" in *:*) return 0 ;; *) return 1 ;; esac; }
