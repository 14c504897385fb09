"""`python -m optimizer.export`: the deployable artifacts of a study, in every format.

Golden files (tests/data/golden/export/<case>/) hold every file an export writes for fixed,
hand-made studies (tests/optimizer/export_study.py): the qwen3-moe recommendation in every
format, its TensorRT-LLM and SGLang trials, and a MindIE trial on Ascend. ``UPDATE_GOLDEN=1``
rewrites them. Beyond the goldens: the TensorRT-LLM file is the nested structure TensorRT-LLM
reads, the Kubernetes manifests pass the Kubernetes schema (offline, strict), the launch script
runs (with stand-ins for the engine, curl and nginx) and quotes every value, nginx accepts its
configuration, and a bad request writes nothing and exits 2.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import optuna
import pytest
import yaml

from optimizer.export.cli import main
from optimizer.space import baseline_params
from optimizer.spec.load import SEARCH_SPACES_DIR, load_spec
from tests.optimizer.export_study import MINDIE_TRIALS, QWEN3_MOE_TRIALS, make_study

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "golden" / "export"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
MINDIE_SPACE = "qwen3-30b-a3b-910b.yaml"

CASES = {
    "qwen3-moe-recommended": ("qwen3-moe.yaml", QWEN3_MOE_TRIALS, []),
    "qwen3-moe-trtllm": (
        "qwen3-moe.yaml", QWEN3_MOE_TRIALS, ["--trial", "3", "--format", "engine", "kubernetes"]
    ),
    "qwen3-moe-sglang": (
        "qwen3-moe.yaml", QWEN3_MOE_TRIALS, ["--trial", "2", "--format", "engine", "launch"]
    ),
    "qwen3-30b-a3b-910b-mindie": (
        MINDIE_SPACE, MINDIE_TRIALS, ["--format", "engine", "launch", "kubernetes", "--image",
                                      "mindie:2.1.0-800I-A2"],
    ),
}  # fmt: skip


def export(tmp_path: Path, case: str) -> Path:
    space, trials, args = CASES[case]
    _, url, spec = make_study(tmp_path, space, trials)
    out = tmp_path / "export"
    assert main([spec.name, "--storage", url, "--out", str(out), *args]) == 0
    return out


def export_trial(tmp_path: Path, trial: int) -> Path:
    """Every format of one trial of the hand-made qwen3-moe study (not its recommendation)."""
    _, url, spec = make_study(tmp_path, "qwen3-moe.yaml", QWEN3_MOE_TRIALS)
    out = tmp_path / "export"
    assert main([spec.name, "--storage", url, "--out", str(out), "--trial", str(trial)]) == 0
    return out


def files_in(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_matches_its_golden_files(tmp_path: Path, case: str) -> None:
    written = files_in(export(tmp_path, case))
    golden = GOLDEN / case
    if UPDATE:
        shutil.rmtree(golden, ignore_errors=True)
        for name, text in written.items():
            (golden / name).parent.mkdir(parents=True, exist_ok=True)
            (golden / name).write_text(text)
    assert written == files_in(golden), "UPDATE_GOLDEN=1 rewrites the golden files"


def test_every_format_of_the_recommendation_is_written(tmp_path: Path) -> None:
    out = export(tmp_path, "qwen3-moe-recommended")
    assert sorted(files_in(out)) == [
        "front.csv",
        "front.json",
        "trial-2/engine/sglang-config.yaml",
        "trial-2/kubernetes.yaml",
        "trial-2/launch.sh",
        "trial-2/nginx.conf",
    ]
    assert os.access(out / "trial-2" / "launch.sh", os.X_OK)


def test_the_vllm_config_uses_flag_names_and_says_false_with_the_flag_that_sets_it(
    tmp_path: Path,
) -> None:
    out = export_trial(tmp_path, 1)
    config = yaml.safe_load((out / "trial-1" / "engine" / "vllm-config.yaml").read_text())
    assert config["tensor-parallel-size"] == 4
    assert config["max-num-seqs"] == 512
    assert config["enable-expert-parallel"] is True
    assert config["disable-prefix-caching"] is True  # vLLM 0.33's flag for prefix caching off
    assert "enable-prefix-caching" not in config
    assert all(not key.startswith("-") for key in config)


def test_the_trtllm_yaml_is_the_nested_structure_trtllm_reads(tmp_path: Path) -> None:
    out = export(tmp_path, "qwen3-moe-trtllm")
    text = (out / "trial-3" / "engine" / "extra-llm-api-options.yaml").read_text()
    assert yaml.safe_load(text) == {
        "tensor_parallel_size": 4,
        "moe_expert_parallel_size": 4,
        "max_batch_size": 1436,
        "max_num_tokens": 3108,
        "max_seq_len": 32768,
        "enable_chunked_prefill": True,
        "kv_cache_config": {
            "free_gpu_memory_fraction": 0.75,
            "enable_block_reuse": False,
            "dtype": "fp8",
        },
        "moe_config": {"backend": "CUTLASS"},
        "scheduler_config": {"capacity_scheduler_policy": "MAX_UTILIZATION"},
    }


def kubernetes_documents(path: Path) -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@pytest.mark.parametrize(
    ("case", "trial"),
    [
        ("qwen3-moe-recommended", 2),
        ("qwen3-moe-trtllm", 3),
        ("qwen3-30b-a3b-910b-mindie", 0),
    ],
)
def test_the_kubernetes_manifests_pass_the_kubernetes_schema(
    tmp_path: Path, case: str, trial: int
) -> None:
    docs = kubernetes_documents(export(tmp_path, case) / f"trial-{trial}" / "kubernetes.yaml")
    assert [d["kind"] for d in docs] == ["ConfigMap", "Deployment", "Service"]
    version = kubernetes_validate.latest_version()
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    broken = yaml.safe_load(yaml.safe_dump(docs[1]))
    broken["spec"]["template"]["spec"]["containers"][0]["gpus"] = 4
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_pods_request_the_trials_devices_under_the_gpus_resource(tmp_path: Path) -> None:
    nvidia = kubernetes_documents(
        export(tmp_path / "a", "qwen3-moe-trtllm") / "trial-3" / "kubernetes.yaml"
    )[1]
    ascend = kubernetes_documents(
        export(tmp_path / "b", "qwen3-30b-a3b-910b-mindie") / "trial-0" / "kubernetes.yaml"
    )[1]
    for doc, resource in ((nvidia, "nvidia.com/gpu"), (ascend, "huawei.com/Ascend910")):
        spec = doc["spec"]
        assert isinstance(spec, dict) and spec["replicas"] == 2
        container = spec["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"] == {resource: 4}
        assert container["resources"]["requests"] == {resource: 4}
    command = nvidia["spec"]["template"]["spec"]["containers"][0]["command"]  # type: ignore[index]
    assert command[command.index("--extra_llm_api_options") + 1] == (
        "/config/extra-llm-api-options.yaml"
    )


def test_the_front_has_every_metric_and_marks_the_recommendation(tmp_path: Path) -> None:
    out = export(tmp_path, "qwen3-moe-recommended")
    document = json.loads((out / "front.json").read_text())
    points = document["points"]
    assert [p["trial"] for p in points] == [1, 3, 2, 0]
    assert [p["on_front"] for p in points] == [True, True, True, False]
    # trial 3 beats trial 1 within noise (5% less throughput, half the latency) and trial 2
    # beats trial 3 (3% less, 11% lower latency): trial 2 is what no trial beats
    assert [p["recommended"] for p in points] == [False, False, True, False]
    assert points[3]["baseline"] is True
    assert points[0]["objectives"] == {"output throughput (tok/s)": 5305.9, "p99 TPOT (ms)": 300.9}
    assert points[0]["replicas"] == 2 and points[0]["gpus_per_replica"] == 4
    assert points[0]["runner"] == "sim"
    assert "p99_e2el_ms" in points[0]["metrics"] and len(points[0]["metrics"]) == 33
    rows = list(csv.DictReader(io.StringIO((out / "front.csv").read_text())))
    assert [r["trial"] for r in rows] == ["1", "3", "2", "0"]
    assert rows[1]["serve_command"].startswith("trtllm-serve ")
    assert float(rows[0]["p99_tpot_ms"]) == 300.9
    assert json.loads(rows[2]["settings"])["tp-size"] == 4


def test_slo_values_are_in_the_front(tmp_path: Path, write_space: object) -> None:
    space = yaml.safe_load((SEARCH_SPACES_DIR / "qwen3-moe.yaml").read_text())
    space["objectives"]["slos"] = [{"metric": "p99_ttft_ms", "max": 10000}]
    path = tmp_path / "slo.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    trials = [
        (params, values, {**extra, "constraints": {"p99_ttft_ms <= 10000": values[1] * 40 - 1e4}})
        for params, values, extra in QWEN3_MOE_TRIALS
        if values is not None
    ]
    _, url, _ = make_study(tmp_path, path, trials)
    out = tmp_path / "export"
    assert main([str(path), "--storage", url, "--out", str(out), "--format", "json", "csv"]) == 0
    points = json.loads((out / "front.json").read_text())["points"]
    by_trial = {p["trial"]: p for p in points}
    assert by_trial[2]["slos"] == {"p99_ttft_ms <= 10000": {"value": pytest.approx(5608.0),
                                                            "met": True}}  # fmt: skip
    stored = optuna.load_study(study_name=None, storage=url).trials
    best = max((t for t in stored if t.values), key=lambda t: t.values[0])
    assert best.number == 1, "trial 1 has the best throughput: only its SLO keeps it off"
    assert best.number not in by_trial, "it breaks the SLO (p99 TTFT 12 s): not on the front"
    rows = list(csv.DictReader(io.StringIO((out / "front.csv").read_text())))
    assert float(rows[0]["slo: p99_ttft_ms <= 10000"]) == pytest.approx(6300.0)
    assert [r["trial"] for r in rows if r["recommended"] == "True"] == ["2"]


def stand_ins(folder: Path) -> Path:
    """A PATH with stand-ins: each engine records its argv and environment, then waits; curl
    answers once an engine with the URL's port has recorded itself; nginx records its argv and
    exits (so the script stops everything)."""
    folder.mkdir()
    record = (
        "#!/usr/bin/env python3\n"
        "import json, os, sys, time\n"
        "out = os.environ['STAND_IN_LOG']\n"
        "entry = {'argv': sys.argv, 'cwd': os.getcwd(),\n"
        "         'devices': os.environ.get('CUDA_VISIBLE_DEVICES')}\n"
        "with open(out, 'a') as f:\n"
        "    f.write(json.dumps(entry) + '\\n')\n"
        "if os.path.basename(sys.argv[0]) != 'nginx':\n"
        "    time.sleep(60)\n"
    )
    for name in ("vllm", "nginx", "trtllm-serve"):
        (folder / name).write_text(record)
        (folder / name).chmod(0o755)
    (folder / "curl").write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        "port = sys.argv[-1].split(':')[2].split('/')[0]\n"
        "path = os.environ['STAND_IN_LOG']\n"
        "calls = open(path).read().splitlines() if os.path.exists(path) else []\n"
        "ready = any(port in json.loads(line)['argv'] for line in calls)\n"
        "sys.exit(0 if ready else 7)\n"
    )
    (folder / "curl").chmod(0o755)
    return folder


def run_script(script: Path, bin_dir: Path, log: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STAND_IN_LOG": str(log),
        "HOME": str(script.parent),
    }
    return subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_launch_script_starts_each_instance_on_its_devices_then_the_balancer(
    tmp_path: Path,
) -> None:
    out = export_trial(tmp_path, 1)
    script = out / "trial-1" / "launch.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    log = tmp_path / "calls.jsonl"
    result = run_script(script, stand_ins(tmp_path / "bin"), log)
    assert result.returncode == 1, result.stderr  # nginx (the stand-in) exited: all stopped
    assert "instance 0 ready" in result.stdout and "instance 1 ready" in result.stdout
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    engines = [c for c in calls if c["argv"][0].endswith("vllm")]
    engines.sort(key=lambda c: c["devices"])
    assert [c["devices"] for c in engines] == ["0,1,2,3", "4,5,6,7"]
    assert [c["argv"][1:] for c in engines] == [
        ["serve", "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", "--config", "vllm-config.yaml",
         "--host", "127.0.0.1", "--port", str(port)]
        for port in (8001, 8002)
    ]  # fmt: skip
    assert all(Path(c["cwd"]) == out / "trial-1" / "engine" for c in engines)
    nginx = next(c for c in calls if c["argv"][0].endswith("nginx"))
    assert nginx["argv"][nginx["argv"].index("-c") + 1] == str(out / "trial-1" / "nginx.conf")


def test_the_launch_script_quotes_what_the_study_holds(tmp_path: Path) -> None:
    """A checkpoint path with quotes, spaces and a command substitution reaches the engine as
    one argument, and nothing in it runs."""
    hostile = "models/it's a $(touch pwned) `touch pwned2` model\nrm -rf x"
    space = yaml.safe_load((SEARCH_SPACES_DIR / "qwen3-moe.yaml").read_text())
    space["model"]["variants"]["fp8"] = hostile
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    _, url, _ = make_study(tmp_path, path, QWEN3_MOE_TRIALS[:2])
    out = tmp_path / "export"
    assert main([str(path), "--storage", url, "--out", str(out), "--format", "launch"]) == 0
    script = out / "trial-1" / "launch.sh"
    log = tmp_path / "calls.jsonl"
    run_script(script, stand_ins(tmp_path / "bin"), log)
    engines = [json.loads(x) for x in log.read_text().splitlines() if '"serve"' in x]
    assert engines and all(c["argv"][2] == hostile for c in engines)
    assert not list(tmp_path.rglob("pwned*")), "a command in the study's data ran"
    comments = [line for line in script.read_text().splitlines() if line.startswith("#")]
    assert any("Measured:" in line and "rm -rf x" in line for line in comments), (
        "a line break in the study's data must not end a comment"
    )


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_finds_nothing_in_the_launch_scripts(tmp_path: Path) -> None:
    for case in ("qwen3-moe-recommended", "qwen3-30b-a3b-910b-mindie"):
        for script in export(tmp_path / case, case).rglob("launch.sh"):
            result = subprocess.run(
                ["shellcheck", str(script)], capture_output=True, text=True, check=False
            )
            assert result.returncode == 0, result.stdout


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_its_configuration(tmp_path: Path) -> None:
    folder = export(tmp_path, "qwen3-moe-recommended") / "trial-2"
    for sub in ("nginx/logs", "nginx/tmp"):
        (folder / sub).mkdir(parents=True)
    result = subprocess.run(
        ["nginx", "-t", "-p", str(folder / "nginx"), "-e", str(folder / "nginx/logs/error.log"),
         "-c", str(folder / "nginx.conf")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_a_mindie_instance_has_its_own_config_with_its_ports(tmp_path: Path) -> None:
    out = export(tmp_path, "qwen3-30b-a3b-910b-mindie") / "trial-0"
    configs = [json.loads((out / f"engine/replica-{i}/config.json").read_text()) for i in (0, 1)]
    assert [c["ServerConfig"]["port"] for c in configs] == [8001, 8004]
    assert [c["ServerConfig"]["managementPort"] for c in configs] == [8002, 8005]
    assert "ASCEND_RT_VISIBLE_DEVICES=4,5,6,7" in (out / "launch.sh").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trial", "4"], "did not complete (PRUNED, oom:runtime)"),
        (["--trial", "99"], "no trial 99"),
        (["--format", "pdf"], "not a format"),
        (["--port", "0"], "--port 0: give a port from 1 to 65533"),
    ],
)
def test_a_bad_request_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    _, url, spec = make_study(tmp_path, "qwen3-moe.yaml", QWEN3_MOE_TRIALS)
    out = tmp_path / "export"
    assert main([spec.name, "--storage", url, "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_kubernetes_for_an_engine_without_a_public_image_needs_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url, spec = make_study(tmp_path, MINDIE_SPACE, MINDIE_TRIALS)
    out = tmp_path / "export"
    assert main([spec.name, "--storage", url, "--out", str(out)]) == 2
    assert "pass --image" in capsys.readouterr().err
    assert not out.exists()


def test_the_command_line_writes_under_the_study_folder(tmp_path: Path) -> None:
    make_study(tmp_path, "qwen3-moe.yaml", QWEN3_MOE_TRIALS)
    result = subprocess.run(
        [sys.executable, "-m", "optimizer.export", "qwen3-moe", "--format", "csv"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "studies" / "qwen3-moe" / "export" / "front.csv").exists()


@pytest.mark.slow
def test_the_recommendation_of_a_real_qwen3_moe_study_exports_in_every_format(
    tmp_path: Path,
) -> None:
    """The shipped main job on the simulator (a short run), exported as a user would."""
    run = subprocess.run(
        [sys.executable, "-m", "optimizer.study", "--space", "qwen3-moe.yaml", "--n-trials", "12",
         "--quiet"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, check=False, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    url = f"sqlite:///{tmp_path / 'studies' / 'qwen3-moe.db'}"
    out = tmp_path / "export"
    assert main(["qwen3-moe", "--storage", url, "--out", str(out)]) == 0
    written = files_in(out)
    folder = next(name.split("/")[0] for name in written if name.startswith("trial-"))
    assert {f"{folder}/launch.sh", f"{folder}/nginx.conf", f"{folder}/kubernetes.yaml"} <= set(
        written
    )
    for name, text in written.items():
        if name.endswith(".yaml") and "/engine/" in name:
            assert isinstance(yaml.safe_load(text), dict), name
    version = kubernetes_validate.latest_version()
    for doc in kubernetes_documents(out / folder / "kubernetes.yaml"):
        kubernetes_validate.validate(doc, version, strict=True)
    points = json.loads(written["front.json"])["points"]
    assert sum(p["recommended"] for p in points) == 1
    assert f"trial-{next(p['trial'] for p in points if p['recommended'])}" == folder


def test_a_configuration_without_engine_files_still_deploys(tmp_path: Path) -> None:
    """The CPU space's baseline sets only an environment variable: no config file, no GPU."""
    space = "tiny-qwen3-moe-cpu.yaml"
    params = baseline_params(load_spec(space))
    _, url, spec = make_study(tmp_path, space, [(params, (900.0, 40.0), {"shape": (1, 1)})])
    out = tmp_path / "export"
    assert main([spec.name, "--storage", url, "--out", str(out), "--format", "all",
                 "--image", "vllm-cpu:0.32.0"]) == 0  # fmt: skip
    assert not (out / "trial-0" / "engine").exists()
    script = (out / "trial-0" / "launch.sh").read_text()
    assert '(cd "$here" && exec setsid env CUDA_VISIBLE_DEVICES=0 VLLM_CPU_KVCACHE_SPACE=1' in (
        script
    )
    docs = kubernetes_documents(out / "trial-0" / "kubernetes.yaml")
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert "resources" not in container, "a CPU standing in for a device requests none"
    assert container["env"] == [{"name": "VLLM_CPU_KVCACHE_SPACE", "value": "1"}]
    for doc in docs:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
