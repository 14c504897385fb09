#!/usr/bin/env bash
# Trial 2 of study qwen3-moe: sglang 0.5.23, 2 instance(s) of 4 x H100-SXM-80GB.
# Written by python -m optimizer.export. Run it on each node of the group: it starts
# every instance on its devices and port, waits until each answers its health check,
# then serves them through nginx on 0.0.0.0:8000 (nginx.conf). Ctrl-C, or
# any process exiting, stops everything it started. Needs bash >= 4.3, curl, setsid,
# nginx and the engine. Logs: logs/.
# Measured: python -m sglang.launch_server --model-path Qwen/Qwen3-235B-A22B-Instruct-2507-FP8 --tp-size 4 --ep-size 4 --context-length 32768 --mem-fraction-static 0.85 --chunked-prefill-size 4096 --max-running-requests 256 --disable-radix-cache --schedule-conservativeness 0.8 --kv-cache-dtype fp8_e4m3 --attention-backend fa3
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
(cd "$here"/engine && exec setsid env CUDA_VISIBLE_DEVICES=0,1,2,3 python -m sglang.launch_server --model-path Qwen/Qwen3-235B-A22B-Instruct-2507-FP8 --config sglang-config.yaml --host 127.0.0.1 --port 8001) \
    >"$here/logs/instance-0.log" 2>&1 &
pids+=("$!")

# instance 1: devices 4,5,6,7, port 8002
(cd "$here"/engine && exec setsid env CUDA_VISIBLE_DEVICES=4,5,6,7 python -m sglang.launch_server --model-path Qwen/Qwen3-235B-A22B-Instruct-2507-FP8 --config sglang-config.yaml --host 127.0.0.1 --port 8002) \
    >"$here/logs/instance-1.log" 2>&1 &
pids+=("$!")

ready 0 http://127.0.0.1:8001/health "${pids[0]}"
ready 1 http://127.0.0.1:8002/health "${pids[1]}"

echo "serving on 0.0.0.0:8000 through nginx (nginx.conf)"
setsid nginx -p "$here/nginx" -e "$here/nginx/logs/error.log" -c "$here/nginx.conf" \
    -g 'daemon off;' &
pids+=("$!")
wait -n || true
echo "a process exited; stopping the others" >&2
exit 1
