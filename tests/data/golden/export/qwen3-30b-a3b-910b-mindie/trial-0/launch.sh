#!/usr/bin/env bash
# Trial 0 of study qwen3-30b-a3b-910b: mindie 2.1.0, 2 instance(s) of 4 x Ascend-910B.
# Written by python -m optimizer.export. Run it on each node of the group: it starts
# every instance on its devices and port, waits until each answers its health check,
# then serves them through nginx on 0.0.0.0:8000 (nginx.conf). Ctrl-C, or
# any process exiting, stops everything it started. Needs bash >= 4.3, curl, setsid,
# nginx and the engine. Logs: logs/.
# Measured: MIES_CONFIG_JSON_PATH=config.json /usr/local/Ascend/mindie/latest/mindie-service/bin/mindieservice_daemon  # config.json: BackendConfig.ModelDeployConfig.maxSeqLen=8192, BackendConfig.ModelDeployConfig.maxInputTokenLen=4096, BackendConfig.ScheduleConfig.maxBatchSize=300, BackendConfig.ScheduleConfig.maxPrefillBatchSize=16
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
start_timeout="${START_TIMEOUT:-1800}"  # seconds per instance
mkdir -p "$here/logs" "$here/nginx/logs" "$here/nginx/tmp"
pids=()

# shellcheck disable=SC2317  # stop and ready are called by the traps and below
stop() {
    trap - EXIT
    for pid in "${pids[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    wait || true
}
trap stop EXIT
trap 'exit 130' INT TERM

ready() {  # instance index, health URL, pid
    local deadline=$((SECONDS + start_timeout))
    until curl -fsS -o /dev/null "$2" 2>/dev/null; do
        if ! kill -0 "$3" 2>/dev/null; then
            echo "instance $1 exited while starting; see $here/logs/instance-$1.log" >&2
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "instance $1 did not answer $2 within $start_timeout s" >&2
            exit 1
        fi
        sleep 5
    done
    echo "instance $1 ready: $2"
}

# instance 0: devices 0,1,2,3, port 8001
(cd "$here"/engine/replica-0 && exec setsid env ASCEND_RT_VISIBLE_DEVICES=0,1,2,3 MIES_CONFIG_JSON_PATH=config.json /usr/local/Ascend/mindie/latest/mindie-service/bin/mindieservice_daemon) \
    >"$here/logs/instance-0.log" 2>&1 &
pids+=("$!")

# instance 1: devices 4,5,6,7, port 8004
(cd "$here"/engine/replica-1 && exec setsid env ASCEND_RT_VISIBLE_DEVICES=4,5,6,7 MIES_CONFIG_JSON_PATH=config.json /usr/local/Ascend/mindie/latest/mindie-service/bin/mindieservice_daemon) \
    >"$here/logs/instance-1.log" 2>&1 &
pids+=("$!")

ready 0 http://127.0.0.1:8001/v1/models "${pids[0]}"
ready 1 http://127.0.0.1:8004/v1/models "${pids[1]}"

echo "serving on 0.0.0.0:8000 through nginx (nginx.conf)"
setsid nginx -p "$here/nginx" -e "$here/nginx/logs/error.log" -c "$here/nginx.conf" \
    -g 'daemon off;' &
pids+=("$!")
wait -n || true
echo "a process exited; stopping the others" >&2
exit 1
