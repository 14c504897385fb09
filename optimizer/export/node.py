"""The launch script of one node and the load balancer in front of its instances.

Place in the data flow: `optimizer.export.cli` formats a `Deployment` (`optimizer.export.plan`)
into ``launch.sh`` and ``nginx.conf``. The script starts every instance in its own session on
its devices (the GPU spec's visibility variable) and loopback port, with its engine files in
its working folder, waits until each answers its health check, then runs nginx in front; when
any of them exits, or on Ctrl-C, it stops them all (by session). Every value that comes from
the study (model, settings, paths) is shell-quoted, and comment text is flattened to one line.

Why nginx: it is engine-neutral (every engine here speaks HTTP with an OpenAI API), installed
everywhere, and streams server-sent events once buffering is off. ``least_conn`` sends each
request to the instance with the fewest open ones: generations differ in length by orders of
magnitude, so round-robin would pile long streams onto one instance.
"""

from __future__ import annotations

import shlex

from optimizer.export.plan import ANY_ADDRESS, Deployment, Instance

START_TIMEOUT_S = 1800
"""Default seconds an instance may take to answer its health check (weights, graphs)."""


def one_line(text: str) -> str:
    """`text` safe inside a ``#`` comment: control characters and line breaks become spaces."""
    return "".join(c if c.isprintable() else " " for c in text)


def describe(dep: Deployment) -> str:
    record = dep.record
    return one_line(
        f"Trial {record.number} of study {dep.study}: {dep.candidate.engine} "
        f"{dep.candidate.engine_version}, {dep.replicas} instance(s) of {dep.gpus_per_replica} "
        f"x {dep.gpu.name}"
    )


def launch_script(dep: Deployment) -> str:
    """``launch.sh``: every instance of one node, then the load balancer."""
    lines = [
        "#!/usr/bin/env bash",
        f"# {describe(dep)}.",
        "# Written by python -m optimizer.export. Run it on each node of the group: it starts",
        "# every instance on its devices and port, waits until each answers its health check,",
        f"# then serves them through nginx on {ANY_ADDRESS}:{dep.port} (nginx.conf). Ctrl-C, or",
        "# any process exiting, stops everything it started. Needs bash >= 4.3, curl, setsid,",
        "# nginx and the engine. Logs: logs/.",
        f"# Measured: {one_line(dep.record.serve_command)}",
        "set -euo pipefail",
        "",
        'here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        f'start_timeout="${{START_TIMEOUT:-{START_TIMEOUT_S}}}"  # seconds per instance',
        'mkdir -p "$here/logs" "$here/nginx/logs" "$here/nginx/tmp"',
        "pids=()",
        "",
        "# shellcheck disable=SC2317  # stop and ready are called by the traps and below",
        "stop() {",
        "    trap - EXIT",
        '    for pid in "${pids[@]}"; do',
        '        kill -TERM -- "-$pid" 2>/dev/null || true',
        "    done",
        "    wait || true",
        "}",
        "trap stop EXIT",
        "trap 'exit 130' INT TERM",
        "",
        "ready() {  # instance index, health URL, pid",
        "    local deadline=$((SECONDS + start_timeout))",
        '    until curl -fsS -o /dev/null "$2" 2>/dev/null; do',
        '        if ! kill -0 "$3" 2>/dev/null; then',
        '            echo "instance $1 exited while starting; see $here/logs/instance-$1.log" >&2',
        "            exit 1",
        "        fi",
        "        if ((SECONDS >= deadline)); then",
        '            echo "instance $1 did not answer $2 within $start_timeout s" >&2',
        "            exit 1",
        "        fi",
        "        sleep 5",
        "    done",
        '    echo "instance $1 ready: $2"',
        "}",
        "",
    ]
    for instance in dep.instances:
        lines += _start(dep, instance)
    for instance in dep.instances:
        url = shlex.quote(instance.health_url)
        lines.append(f'ready {instance.index} {url} "${{pids[{instance.index}]}}"')
    lines += [
        "",
        f'echo "serving on {ANY_ADDRESS}:{dep.port} through nginx (nginx.conf)"',
        'setsid nginx -p "$here/nginx" -e "$here/nginx/logs/error.log" -c "$here/nginx.conf" \\',
        "    -g 'daemon off;' &",
        'pids+=("$!")',
        "wait -n || true",
        'echo "a process exited; stopping the others" >&2',
        "exit 1",
    ]
    return "\n".join(lines) + "\n"


def _start(dep: Deployment, instance: Instance) -> list[str]:
    devices = ",".join(str(d) for d in instance.devices)
    env = [(dep.gpu.visible_devices_env, devices), *instance.launch.env]
    command = shlex.join(["setsid", "env", *(f"{k}={v}" for k, v in env), *instance.launch.argv])
    folder = f'"$here"/{shlex.quote(instance.workdir)}' if instance.launch.files else '"$here"'
    return [
        f"# instance {instance.index}: devices {devices}, port {instance.port}",
        f"(cd {folder} && exec {command}) \\",
        f'    >"$here/logs/instance-{instance.index}.log" 2>&1 &',
        'pids+=("$!")',
        "",
    ]


def nginx_conf(dep: Deployment) -> str:
    """``nginx.conf``: one upstream of the instances, least connections, streaming."""
    servers = "\n".join(
        f"        server 127.0.0.1:{i.port} max_fails=0;  # instance {i.index}"
        for i in dep.instances
    )
    return f"""# {describe(dep)}.
# Written by python -m optimizer.export; launch.sh runs it with this folder's nginx/ as prefix.
# least_conn: each request goes to the instance with the fewest open requests (generations
# differ in length by orders of magnitude; round-robin would pile long streams on one).
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;

    upstream engines {{
        least_conn;
{servers}
        keepalive 64;
    }}

    server {{
        listen {ANY_ADDRESS}:{dep.port};
        client_max_body_size 64m;

        location / {{
            proxy_pass http://engines;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;          # stream tokens as the engine sends them
            proxy_request_buffering off;
            proxy_read_timeout 3600s;     # a long generation may stream for many minutes
            proxy_send_timeout 3600s;
        }}
    }}
}}
"""
