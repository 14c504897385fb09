"""One published benchmark row turned into a simulator case, or the one-line reason it cannot.

Place in the data flow: `runners.sim.replay` reads rows and calls `load_case`; calibration
(scripts/calibrate_sim.py) does the same. A row is in the calibration CSV schema (model, gpu,
engine, engine_version, flags_json, env, dataset, ..., num_gpus_used) or a published headline
(its serve command in ``config_desc`` or ``serve_command``, ``num_gpus``, ``headline_id``).
The model goes through the one resolver (`runners.catalog.resolve_checkpoint`: catalogue, a
models folder, the local Hugging Face cache; a name with a quantization suffix is its base
model plus that format), the engine release through the registry (an uncatalogued release
takes the nearest catalogued one, and the case's `note` says which), and the settings through
the engine adapter (`runners.engines.resolve`: its own defaults and argument checks). A row
that does not state its node size gets the GPUs its flags need (TP x PP x DP of one instance).
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from runners.catalog import get_gpu, resolve_checkpoint
from runners.engines import (
    EngineAdapter,
    canonical_engine,
    check_version,
    get_engine,
    release,
    resolve,
)
from runners.errors import ServingOptimizerError
from runners.types import (
    Candidate,
    CheckpointFormat,
    Crash,
    NodeGroup,
    ServingConfig,
    SettingValue,
    Workload,
)

COMMAND_COLUMNS = ("flags_json", "config_desc", "serve_command")
# Options of a serve command that are not engine settings (the model, where it listens).
NOT_SETTINGS = frozenset(
    {"model", "model-path", "model_path", "host", "port", "served-model-name", "tokenizer"}
)


@dataclass(frozen=True)
class ReplayCase:
    """A row turned into something the simulator can run, or the reason it cannot be.

    Exactly one of `config` (resolved), `crash` (the adapter's own argument check failed) and
    `error` (the row cannot be expressed) is set. `note` says what was assumed on the way (the
    release whose catalogue applied, the GPUs a row without a node size was given).
    """

    run_id: str
    config: ServingConfig | None
    workload: Workload | None
    crash: Crash | None = None
    error: str = ""
    note: str = ""


def _number(row: Mapping[str, str], key: str) -> float | None:
    text = (row.get(key) or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _json_settings(row: Mapping[str, str]) -> dict[str, SettingValue]:
    """flags_json keys are underscore-spelled; the adapter accepts every spelling of a setting
    (``max_num_seqs`` for ``--max-num-seqs``)."""
    raw = json.loads(row.get("flags_json") or "{}")
    if not isinstance(raw, dict):
        raise ValueError(f"flags_json is not an object: {row.get('flags_json')!r}")
    settings: dict[str, SettingValue] = {}
    for key, value in raw.items():
        if not isinstance(value, bool | int | float | str):
            raise ValueError(f"flag {key!r} has a value the tool cannot express: {value!r}")
        settings[str(key)] = value
    return settings


def _typed(adapter: EngineAdapter, name: str, text: str) -> SettingValue:
    info = adapter.settings()[name]
    if info.kind == "int":
        return int(text)
    if info.kind == "float":
        return float(text)
    if info.kind == "bool":
        return text.lower() in ("1", "true", "yes", "on")
    return next((c for c in info.choices if str(c) == text), text)


def command_settings(adapter: EngineAdapter, command: str) -> dict[str, SettingValue]:
    """The settings of a serve command line (``VAR=x`` prefixes are environment settings;
    program words, the model and listen options are skipped). An option the release does not
    have is the adapter's `EngineError`."""
    settings: dict[str, SettingValue] = {}
    tokens = shlex.split(command)
    switches = {
        spelling: (info.name, value)
        for info in adapter.settings().values()
        for spelling, value in ((info.true_flag, True), (info.false_flag, False))
        if spelling
    }
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not token.startswith("-"):
            if "=" in token and not settings and token.split("=", 1)[0].isupper():
                name, value = token.split("=", 1)
                settings[name] = value  # an environment setting, named by its variable
            continue
        if token in switches:
            name, flag = switches[token]
            settings[name] = flag
            continue
        name, _, value = token.lstrip("-").partition("=")
        if name in NOT_SETTINGS:
            index += 0 if value else 1
            continue
        canonical = adapter.canonical_name(name)
        if canonical is None:
            adapter.normalize({name: ""})  # raises the adapter's own message
            continue
        kind = adapter.settings()[canonical].kind
        if not value and kind == "bool":
            settings[canonical] = True
            continue
        if not value:
            if index >= len(tokens):
                raise ValueError(f"option {token} has no value")
            value, index = tokens[index], index + 1
        settings[canonical] = _typed(adapter, canonical, value)
    return settings


def _settings(row: Mapping[str, str], adapter: EngineAdapter) -> dict[str, SettingValue]:
    if "flags_json" in row:
        settings = _json_settings(row)
    else:
        command = next((row[c] for c in COMMAND_COLUMNS[1:] if (row.get(c) or "").strip()), "")
        settings = command_settings(adapter, command)
    for item in (row.get("env") or "").split():
        if "=" in item:
            # Environment settings are adapter settings named by their variable.
            name, value = item.split("=", 1)
            settings[name] = value
    # Unknown names are the adapter's call: `resolve` rejects them with its own message.
    return settings


def _workload(row: Mapping[str, str]) -> Workload:
    """The benchmark as run. Request count and mean output length are workload facts the row
    records (successful requests; outputs shorter than output_len because EOS was not ignored)."""
    dataset = (row.get("dataset") or "").strip().lower()
    prompts = int(_number(row, "num_prompts") or 0)
    succeeded = _number(row, "successful_requests")
    if succeeded:
        prompts = int(succeeded)
    rate = _number(row, "request_rate")
    concurrency = _number(row, "max_concurrency")
    common = {
        "num_prompts": prompts,
        "request_rate": math.inf if rate is None or math.isinf(rate) else rate,
        "max_concurrency": int(concurrency) if concurrency else None,
    }
    if prompts <= 0:
        raise ValueError("num_prompts is missing")
    if dataset == "sharegpt":
        return Workload(name="sharegpt", dataset="sharegpt-like", **common)  # type: ignore[arg-type]
    if dataset == "random":
        in_len, out_len = _number(row, "input_len"), _number(row, "output_len")
        if in_len is None or out_len is None:
            raise ValueError("a random-dataset row needs input_len and output_len")
        out_tokens = _number(row, "total_output_tokens")
        if out_tokens and succeeded:
            out_len = max(1.0, round(out_tokens / succeeded))
        return Workload(
            name=f"random-{int(in_len)}-{int(out_len)}",
            dataset="random",
            input_len=int(in_len),
            output_len=int(out_len),
            **common,  # type: ignore[arg-type]
        )
    raise ValueError(f"dataset {dataset!r} is not simulated (known: sharegpt, random)")


def run_id(row: Mapping[str, str]) -> str:
    return row.get("run_id") or row.get("headline_id") or ""


def load_case(
    row: Mapping[str, str], models_dir: Path | None = None, strict_versions: bool = False
) -> ReplayCase:
    """Turn one CSV row into a `ReplayCase`; never raises."""
    rid = run_id(row)
    notes: list[str] = []
    try:
        engine = canonical_engine((row.get("engine") or "").strip().lower())
        checkpoint = (row.get("model") or "").strip()
        found = resolve_checkpoint(checkpoint, models_dir=models_dir)
        fmt: CheckpointFormat = found.quantization.format if found.quantization else "bf16"
        gpu = get_gpu((row.get("gpu") or "").strip())
        version = (row.get("engine_version") or "").strip()
        used = release(engine, version)
        adapter = get_engine(engine, version)
        if not used.catalogued:
            check_version(adapter, version, strict=strict_versions)
            notes.append(f"the catalogue of {engine} {used.used} applies to {used.asked}")
        settings = _settings(row, adapter)
        candidate = Candidate.make(engine, version, found.model.name, checkpoint, fmt, settings)
        gpus = int(_number(row, "num_gpus_used") or _number(row, "num_gpus") or 0)
        if gpus <= 0:
            effective = adapter.effective_settings(adapter.normalize(settings), found.model, gpu)
            gpus = adapter.gpus_per_instance(effective, found.model)
            notes.append(f"no node size given: {gpus} GPUs, what its flags need")
        node_group = NodeGroup(f"{gpu.name}x{gpus}", gpu.name, gpus)
        workload = _workload(row)
        resolved = resolve(candidate, node_group)
    except (ServingOptimizerError, ValueError, KeyError, TypeError) as exc:
        return ReplayCase(rid, None, None, error=f"{type(exc).__name__}: {exc}")
    note = "; ".join(notes)
    if isinstance(resolved, Crash):
        return ReplayCase(rid, None, workload, crash=resolved, note=note)
    # One row is one engine instance: never replicate it to fill a node.
    return ReplayCase(rid, replace(resolved, replicas=1), workload, note=note)


__all__ = ["ReplayCase", "command_settings", "load_case", "run_id"]
