# koi-service.sh — source this from a koi service script:
#
#     #!/bin/sh
#     . "$(dirname "$0")/../koi-service.sh"     # or /etc/koi/services/koi-service.sh
#
# koi runs each script with the service directory as working directory,
# stdin closed, and these variables: KOI_EVENT, KOI_SERVICE, KOI_NODE,
# KOI_IS_PROMOTED (1 when this runner is or is becoming master), KOI_STATE
# (Master, Slave, ...), KOI_EPOCH (fencing token of the current master's
# leadership), KOI_MASTER (name of the current master, may be empty).
# Everything the script prints goes to koinode's log, line by line.

# Exit codes of a `status` script.
KOI_OK=0                # healthy
KOI_IS_MASTER=90        # "I am master" (koi demotes it if this runner is not master)
KOI_IS_SLAVE=91         # "I am slave"
KOI_IS_STOPPED=92       # "stopped" (koi runs start again)
KOI_NOT_PROMOTABLE=93   # "live but not promotable", e.g. while resyncing

koi_log() { printf '%s\n' "$*"; }
koi_warn() { printf 'warning: %s\n' "$*" >&2; }
# Fail the event with a message (any exit code other than 0 is a failure).
koi_fail() { printf 'error: %s\n' "$*" >&2; exit 1; }
# True when this runner is, or is becoming, the master.
koi_promoted() { [ "${KOI_IS_PROMOTED:-0}" = 1 ]; }
# True when KOI_MASTER names another node (a replica should follow it).
koi_other_master() { [ -n "${KOI_MASTER:-}" ] && [ "${KOI_MASTER}" != "${KOI_NODE:-}" ]; }
