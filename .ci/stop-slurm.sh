#!/usr/bin/env bash
# Stop the local SLURM started by .ci/start-slurm.sh: cancel every job, then stop the
# slurmd of each fake node, slurmctld, slurmdbd, MariaDB and munged. Idempotent; leaves
# packages, config and the accounting database.
#   bash .ci/stop-slurm.sh
#   SLURM_INSTANCE=NAME bash .ci/stop-slurm.sh   # a second instance (see start-slurm.sh);
#                                               # munged, which it shares, keeps running
set -uo pipefail

INSTANCE=${SLURM_INSTANCE:-}
PREFIX=${INSTANCE:+/tmp/slurm-instance-$INSTANCE}
[ -z "$INSTANCE" ] || export SLURM_CONF=$PREFIX/etc/slurm/slurm.conf

running() {  # the process exists and is not a zombie
    [ -d "/proc/$1" ] && ! grep -qs '^State:[[:space:]]*Z' "/proc/$1/status"
}
# stop COMM PIDFILE...: SIGTERM each live daemon, wait up to 10 s, then SIGKILL
stop() {
    local comm=$1 file pid pids=()
    shift
    for file in "$@"; do
        [ -s "$file" ] || continue
        pid=$(cat "$file")
        if running "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]; then
            pids+=("$pid")
            kill "$pid" 2>/dev/null || true
        fi
        rm -f "$file"
    done
    for _ in $(seq 100); do
        local alive=0
        for pid in "${pids[@]}"; do running "$pid" && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do running "$pid" && kill -9 "$pid" 2>/dev/null; done
    echo "[stop-slurm] stopped ${#pids[@]} $comm"
}

if command -v scancel >/dev/null && scontrol ping >/dev/null 2>&1; then
    scancel --full --user "$(id -un)" 2>/dev/null || true
fi
stop slurmd "$PREFIX"/run/slurm/slurmd-*.pid
stop slurmctld "$PREFIX/run/slurm/slurmctld.pid"
stop slurmdbd "$PREFIX/run/slurm/slurmdbd.pid"
stop mariadbd "$PREFIX/run/slurm-mariadb/mariadbd.pid"
[ -n "$INSTANCE" ] || stop munged /run/munge/munged.pid
