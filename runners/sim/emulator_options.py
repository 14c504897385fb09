"""The emulator's command line: its own options, then the engine's command line after ``--``.

Place in the data flow: `runners.sim.serve.main` calls `parse_options` first. The engine's
flags are parsed by a parser built from the engine adapter's settings table
(`engine_parser`: unknown flags and bad values fail as argparse does in the engine, exit 2), for
any registered engine whose entry describes its command line and has a simulator policy. A
truth profile (`--profile`, `runners.sim.profile`) is read here, so a bad one stops the
emulator before it starts (`ProfileError`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from runners.catalog import get_model
from runners.engines import CommandLine, EngineAdapter, engine_names, get_engine, get_entry
from runners.sim.params import Calibration
from runners.sim.profile import TruthProfile, identity_profile, load_profile
from runners.types import EngineName, SettingValue, WeightDtype


@dataclass(frozen=True)
class EmulatorOptions:
    engine: EngineName
    model_path: str
    served_name: str
    host: str
    port: int
    settings: tuple[tuple[str, SettingValue], ...]
    gpu: str
    gpus_per_node: int
    model: str
    engine_version: str
    time_scale: float
    startup_s: float
    hang: Literal["none", "start", "load"]
    fault: Literal["none", "http500", "malformed"] = "none"
    weight_dtype: WeightDtype = "bf16"
    profile: TruthProfile = field(default_factory=identity_profile)
    nodes: int = 1
    node_rank: int = 0

    @property
    def calibration(self) -> Calibration:
        """The calibration this engine really runs with: the profile's, for its engine."""
        return self.profile.calibration(self.engine, self.gpu)


def engine_parser(adapter: EngineAdapter, command: CommandLine) -> argparse.ArgumentParser:
    """An argparse parser accepting the engine's launch flags, from the adapter's table."""
    parser = argparse.ArgumentParser(prog=command.prog)
    if command.model_flags:
        parser.add_argument(*command.model_flags, dest="model_tag", required=True)
    else:
        parser.add_argument("model_tag")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=adapter.default_port)
    parser.add_argument("--served-model-name", nargs="+")
    for name, info in adapter.settings().items():
        dest = "s:" + name
        if info.source != "flag":
            continue
        if info.kind == "bool":
            if info.true_flag:
                parser.add_argument(info.true_flag, dest=dest, action="store_true", default=None)
            if info.false_flag:
                parser.add_argument(info.false_flag, dest=dest, action="store_false")
        elif info.kind == "int":
            parser.add_argument(info.spelling, dest=dest, type=int)
        elif info.kind == "float":
            parser.add_argument(info.spelling, dest=dest, type=float)
        else:
            choices = [str(c) for c in info.choices]
            parser.add_argument(info.spelling, dest=dest, choices=choices)
    return parser


def _emulated_commands() -> list[tuple[EngineName, CommandLine]]:
    """The registered engines the emulator can stand in for, with their command lines."""
    found: list[tuple[EngineName, CommandLine]] = []
    for name in engine_names():
        entry = get_entry(name)
        if entry.command_line is not None and entry.sim_policy is not None:
            found.append((name, entry.command_line))
    return found


def _emulated_command(argv: list[str]) -> tuple[EngineName, CommandLine, list[str]] | None:
    """(engine, its command line, the arguments after it) for an engine's own `argv`."""
    for name, command in _emulated_commands():
        rest = command.rest(argv)
        if rest is not None:
            return name, command, rest
    return None


def _typed(adapter: EngineAdapter, name: str, value: SettingValue) -> SettingValue:
    info = adapter.settings()[name]
    if info.kind == "choice" and isinstance(value, str):
        for choice in info.choices:
            if str(choice) == value:
                return choice
    return value


def parse_options(argv: Sequence[str]) -> EmulatorOptions:
    own = argparse.ArgumentParser(
        prog="python -m runners.sim.serve",
        description="Emulated LLM engine: python -m runners.sim.serve [options] -- ENGINE ARGV",
    )
    own.add_argument("--gpu", default="H100-SXM-80GB", help="catalogue GPU to emulate")
    own.add_argument("--gpus-per-node", type=int, default=8)
    own.add_argument("--model", help="catalogue model (default: looked up from the checkpoint)")
    own.add_argument("--engine-version", default="", help="default: the newest catalogued")
    own.add_argument("--time-scale", type=float, default=1.0, help="run this many times faster")
    own.add_argument("--startup-s", type=float, default=1.0, help="emulated start-up time")
    own.add_argument("--hang", choices=["none", "start", "load"], default="none")
    own.add_argument(
        "--fault",
        choices=["none", "http500", "malformed"],
        default="none",
        help="answer every generation request with HTTP 500, or stream malformed data",
    )
    own.add_argument(
        "--weight-dtype",
        choices=["bf16", "fp8"],
        default="bf16",
        help="what the checkpoint holds (default %(default)s)",
    )
    own.add_argument(
        "--profile",
        metavar="FILE",
        help="truth profile: how this engine really behaves (docs/emulator-profile.md)",
    )
    own.add_argument("--nodes", type=int, default=1, help="nodes the instance spans")
    own.add_argument(
        "--node-rank", type=int, default=0, help="this node's rank (above 0: it only waits)"
    )
    args = list(argv)
    split = args.index("--") if "--" in args else len(args)
    ns = own.parse_args(args[:split])
    profile = load_profile(ns.profile) if ns.profile else identity_profile()
    engine_argv = args[split + 1 :]
    found = _emulated_command(engine_argv)
    if found is None:
        known = " or ".join(f"`{c.prog} ...`" for _, c in _emulated_commands())
        own.error(f"after --, give {known}")
    engine, command, rest = found
    adapter = get_engine(engine, ns.engine_version or None)
    parsed = vars(engine_parser(adapter, command).parse_args(rest))
    settings = tuple(
        (key[2:], _typed(adapter, key[2:], value))
        for key, value in parsed.items()
        if key.startswith("s:") and value is not None
    )
    model_path = str(parsed["model_tag"])
    served = parsed["served_model_name"]
    return EmulatorOptions(
        engine=engine,
        model_path=model_path,
        served_name=served[0] if served else model_path,
        host=str(parsed["host"]),
        port=int(parsed["port"]),
        settings=settings,
        gpu=ns.gpu,
        gpus_per_node=ns.gpus_per_node,
        model=ns.model or get_model(model_path).name,
        engine_version=ns.engine_version or str(adapter.version),
        time_scale=ns.time_scale,
        startup_s=ns.startup_s,
        hang=ns.hang,
        fault=ns.fault,
        weight_dtype=ns.weight_dtype,
        profile=profile,
        nodes=ns.nodes,
        node_rank=ns.node_rank,
    )
