"""Conformance suite for an engine's registry entry: subclass `EngineEntrySuite` in a test module.

Place in the data flow: a new engine (its folder under runners/engines/, or a plug-in) is checked
by a test class that subclasses `EngineEntrySuite` and names the registered engine in `engine`
(and, where the defaults do not suit it, the model and devices to try it on); pytest then runs
every contract below against it, as `optuna.testing` does for storages. The project runs it on
every shipped engine and on a toy fifth engine defined under tests/.

The contracts: the entry is registered under its adapter's name; catalogue entries are well
formed for every release range; every catalogued release resolves its version spelling; the
defaults resolve on a GPU (and, where the engine runs there, on the CPU device) to a
`ServingConfig` that breaks none of the entry's static rules; every setting renders into the
launch under its own spelling and is found again from that spelling; a deployed instance keeps
its settings in the engine's own configuration files (which parse, and which its launch names),
not on its command line, and listens on the port it is given; the argument checks refuse
an instance that does not fit the node with a `Crash` carrying a class and the engine's text; an
instance of two nodes' GPUs renders one launch per node (each with its own devices, rank 0's
address as the rendezvous) where the release can span nodes, and keeps its one-node error where
it cannot;
every crash signature classifies its own example lines; and a simulator policy, when present,
answers everything the simulator asks of it.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import ClassVar

import pytest
import yaml

from runners.catalog import get_gpu, get_model
from runners.engines import (
    EngineAdapter,
    EngineEntry,
    SettingInfo,
    check_version,
    deploy,
    diagnose,
    get_engine,
    get_entry,
    parse_version,
    render,
    render_nodes,
    resolve_candidate,
    simulator_check,
)
from runners.engines.policy import MemoryFacts
from runners.engines.rules import Subject
from runners.errors import EngineError
from runners.types import (
    Candidate,
    CrashClass,
    NodeGroup,
    NodeSlot,
    Placement,
    ServingConfig,
    SettingValue,
    Workload,
)

TINY_WORKLOAD = Workload(name="tiny", dataset="random", num_prompts=8, input_len=64, output_len=8)


class EngineEntrySuite:
    """The contracts every engine entry keeps. Subclasses set `engine` (a registered name)."""

    engine: ClassVar[str]
    model: ClassVar[str] = "Qwen3-30B-A3B"
    checkpoint: ClassVar[str] = "Qwen/Qwen3-30B-A3B"
    gpu: ClassVar[str] = "H100-SXM-80GB"
    gpus_per_node: ClassVar[int] = 8
    cpu: ClassVar[str | None] = None
    """A CPU device the engine runs on (its defaults must resolve there too), or None."""
    cpu_model: ClassVar[str] = "tiny-qwen3-moe"
    spanning_settings: ClassVar[dict[str, SettingValue] | None] = None
    """Settings of one instance of two nodes' GPUs (e.g. TP 16 on nodes of 8), or None."""

    # --- helpers ------------------------------------------------------------------------------
    def entry(self) -> EngineEntry:
        return get_entry(self.engine)

    def adapter(self) -> EngineAdapter:
        return get_engine(self.engine)

    def candidate(
        self, settings: dict[str, SettingValue] | None = None, model: str | None = None
    ) -> Candidate:
        adapter = self.adapter()
        return Candidate.make(
            self.engine,
            str(adapter.version),
            model or self.model,
            self.checkpoint,
            "bf16",
            settings or {},
        )

    def node_group(self, gpu: str | None = None, gpus: int | None = None) -> NodeGroup:
        return NodeGroup("suite", gpu or self.gpu, self.gpus_per_node if gpus is None else gpus)

    def default_config(self) -> ServingConfig:
        resolved = resolve_candidate(self.candidate(), self.node_group())
        assert resolved.config is not None, resolved.problem
        return resolved.config

    # --- registration and versions ------------------------------------------------------------
    def test_entry_is_registered_under_its_adapters_name(self) -> None:
        entry = self.entry()
        assert entry.name == self.engine == entry.adapter.name
        assert entry.launch, "say in words how the engine starts (README table)"

    def test_every_catalogued_release_resolves_its_spelling(self) -> None:
        adapter_type = self.entry().adapter
        assert adapter_type.supported, "an engine supports at least one release range"
        newest = parse_version(adapter_type.newest)
        assert any(line.contains(newest) for line in adapter_type.supported)
        for line in adapter_type.supported:
            text = line.since if line.since != "0" else adapter_type.newest
            version = check_version(self.adapter(), text)
            assert get_engine(self.engine, version).version == parse_version(version)
        with pytest.raises(EngineError, match="not in the catalogue"):
            check_version(self.adapter(), "999.0.0", strict=True)
        # any other release takes its nearest catalogued one (here the newest)
        assert get_engine(self.engine, "999.0.0").version == newest

    # --- the catalogue ------------------------------------------------------------------------
    def test_catalogue_entries_are_well_formed(self) -> None:
        for info in self.entry().adapter.catalogue():
            assert info.help, info.name
            assert info.kind in ("int", "float", "bool", "choice"), info.name
            assert info.source in ("flag", "env", "config"), info.name
            assert info.default is not None or info.default_note, info.name
            if info.kind == "choice":
                assert info.choices and info.default in info.choices, info.name
            if info.default is not None and not info.default_note and info.kind != "bool":
                # a default outside the valid values must say what it means ("unset")
                assert info.check(info.default) is None, (info.name, info.default)
            if info.kind == "bool" and info.source == "flag":
                assert info.true_flag or info.false_flag, info.name
        adapter = self.adapter()
        names = [i.name for i in adapter.catalogue() if i.versions.contains(adapter.version)]
        assert len(names) == len(set(names)), "one entry per setting and release"

    # --- defaults -----------------------------------------------------------------------------
    def test_defaults_resolve_on_a_gpu(self) -> None:
        self._defaults_resolve(self.gpu, self.model)

    def test_defaults_resolve_on_the_cpu_device(self) -> None:
        if self.cpu is None:
            pytest.skip(f"{self.engine} does not run on a CPU device")
        self._defaults_resolve(self.cpu, self.cpu_model, gpus=1)

    def _defaults_resolve(self, gpu: str, model: str, gpus: int | None = None) -> None:
        adapter = self.adapter()
        effective = adapter.effective_settings({}, get_model(model), get_gpu(gpu))
        assert set(effective) == set(adapter.settings())
        resolved = resolve_candidate(self.candidate(model=model), self.node_group(gpu, gpus))
        assert resolved.problem is None, resolved.problem
        assert resolved.config is not None and resolved.config.engine == self.engine
        assert resolved.instance_gpus == resolved.split.gpus >= 1
        subject = Subject(resolved.config, resolved.split, resolved.node_group)
        broken = [rule.id for rule in self.entry().rules if rule.check(subject) is not None]
        assert broken == [], f"the engine's own defaults break its rules {broken}"

    # --- rendering ----------------------------------------------------------------------------
    def test_every_setting_renders_under_its_spelling_and_is_found_again(self) -> None:
        adapter = self.adapter()
        placement = Placement(self.node_group(), tuple(range(self.gpus_per_node)))
        for name, info in adapter.settings().items():
            written = info.key.rsplit(".", 1)[-1] if info.key else info.spelling.lstrip("-")
            assert adapter.canonical_name(written) == name, (name, written)
            value = _non_default(info)
            if value is None:
                continue
            candidate = self.candidate({name: value})
            if name not in resolve_candidate(candidate, self.node_group()).minimal_dict():
                continue  # no effect on its own (e.g. draft tokens without a draft method)
            launch = render(candidate, placement, port=8000)
            where = " ".join(launch.argv) + str(launch.env) + str(launch.files)
            spelling = info.spelling if info.source != "config" else info.spelling.split(".")[-1]
            if info.kind == "bool" and info.source == "flag":
                spelling = str(info.true_flag if value else info.false_flag)
            assert spelling in where, (name, value, where)
        assert placement.node_group.gpu  # the device-visibility variable comes from the GPU
        env = dict(render(self.candidate(), placement, port=8000).env)
        assert get_gpu(self.gpu).visible_devices_env in env

    # --- deployment ---------------------------------------------------------------------------
    def test_a_deployed_instance_keeps_its_settings_in_the_engines_own_files(self) -> None:
        port = 9100
        base = deploy(self.candidate(), self.node_group(), "0.0.0.0", port)
        written = " ".join(base.argv) + "".join(text for _, text in base.files)
        assert str(port) in written, "the instance listens on the port it is given"
        for name, text in (*base.files, *self._deployed_files()):
            assert name and not name.startswith("/") and ".." not in name, name
            _parses(name, text)
        adapter = self.adapter()
        for name, info in adapter.settings().items():
            value = _non_default(info)
            if value is None:
                continue
            candidate = self.candidate({name: value})
            if name not in resolve_candidate(candidate, self.node_group()).minimal_dict():
                continue
            parts = deploy(candidate, self.node_group(), "0.0.0.0", port)
            assert (parts.files, parts.env) != (base.files, base.env), (name, value)
            for file_name, _ in parts.files:
                named = (*parts.argv, *(v for _, v in parts.env))
                assert any(file_name in arg for arg in named), f"{file_name} is never read"
            if info.source == "flag":
                spelling = info.true_flag if info.kind == "bool" and value else info.spelling
                if info.kind == "bool" and not value:
                    spelling = info.false_flag
                assert spelling not in parts.argv, (name, "belongs in the config file")

    def _deployed_files(self) -> list[tuple[str, str]]:
        """The files of a deployment with every setting at a non-default value at once."""
        settings: dict[str, SettingValue] = {}
        for name, info in self.adapter().settings().items():
            value = _non_default(info)
            if value is not None and info.kind in ("bool", "choice"):
                settings[name] = value
        candidate = self.candidate(settings)
        if not resolve_candidate(candidate, self.node_group()).ok:
            return []
        return list(deploy(candidate, self.node_group(), "0.0.0.0", 9100).files)

    # --- argument checks and static rules -----------------------------------------------------
    def test_an_instance_that_does_not_fit_the_node_is_refused_with_the_engines_text(
        self,
    ) -> None:
        resolved = resolve_candidate(self.candidate(), self.node_group(gpus=0))
        assert resolved.problem is not None and resolved.config is None
        assert isinstance(resolved.problem.crash_class, CrashClass)
        assert resolved.problem.message.strip()

    def test_an_instance_over_two_nodes_launches_on_each_or_keeps_its_one_node_error(
        self,
    ) -> None:
        if self.spanning_settings is None:
            pytest.skip(f"no instance over two nodes is given for {self.engine}")
        candidate = self.candidate(self.spanning_settings)
        group = NodeGroup("suite", self.gpu, self.gpus_per_node, 2, 50.0)
        ids = tuple(range(self.gpus_per_node))
        placement = Placement(
            group, ids, others=(NodeSlot("10.0.0.2", ids),), head_address="10.0.0.1"
        )
        resolved = resolve_candidate(candidate, group)
        one_node = resolve_candidate(candidate, self.node_group())
        assert one_node.problem is not None
        assert one_node.problem.crash_class == CrashClass.TOO_MANY_GPUS
        if not self.adapter().spans_nodes():
            assert resolved.problem is not None
            assert resolved.problem.message == one_node.problem.message
            with pytest.raises(EngineError, match="cannot run one instance over several nodes"):
                render_nodes(candidate, placement, port=8000)
            return
        assert resolved.problem is None and resolved.config is not None
        assert (resolved.config.nodes, resolved.config.inter_node_gb_s) == (2, 50.0)
        launches = render_nodes(candidate, placement, port=8000)
        assert len(launches) == 2 and launches[0].argv, "rank 0 starts the instance"
        device_env = get_gpu(self.gpu).visible_devices_env
        for launch, node in zip(launches, placement.nodes, strict=True):
            assert dict(launch.env)[device_env] == ",".join(map(str, node.gpu_ids))
        assert "10.0.0.1" in " ".join(launches[0].argv), "the rendezvous is rank 0's address"
        assert "[node 0]" in resolved.serve_command

    def test_rules_have_distinct_ids(self) -> None:
        ids = [rule.id for rule in self.entry().rules]
        assert ids and len(ids) == len(set(ids))

    # --- crash signatures ---------------------------------------------------------------------
    def test_every_crash_signature_classifies_its_own_examples(self) -> None:
        signatures = self.entry().crashes.signatures
        assert signatures, "an engine knows at least one of its own error lines"
        for signature in signatures:
            assert signature.examples, signature.pattern.pattern
            for line in signature.examples:
                crash = diagnose(self.engine, 1, f"INFO starting\n{line}\n")
                assert crash.crash_class == signature.crash_class, line
                assert crash.message.strip()

    # --- the simulator policy -----------------------------------------------------------------
    def test_simulator_policy_answers_what_the_simulator_asks(self) -> None:
        policy = self.entry().sim_policy
        if policy is None:
            pytest.skip(f"{self.engine} has no simulator policy")
        config = self.default_config()
        assert policy.page_tokens(config) >= 1 and policy.engine_cores(config) >= 1
        assert policy.instances(config) >= 1 and policy.moe_shard_ranks(config) >= 1
        assert policy.split(config).gpus >= 1
        assert policy.min_kv_tokens >= 1
        assert policy.running_limit(config, 100_000) >= 0
        for field in ("cpu_step_s", "cpu_per_seq_s", "c_in_s", "latency_s", "c_out_s", "kernel"):
            value = getattr(policy.costs, field)
            assert value > 0 and math.isfinite(value), field
        facts = MemoryFacts(79.0, 10.0, 1000, 1024, 1.0, 2.0, 2.0)
        assert policy.no_kv_text(config).strip()
        if policy.kv_capacity_check != "none":
            assert policy.kv_too_small_text(config, facts, 5.0).strip()
        if policy.startup_headroom_crash:
            assert policy.startup_oom_text(config, facts).strip()
        info, error = policy.log_prefixes(datetime(2026, 1, 2, 3, 4, 5))
        assert info and error
        assert all(line for line in policy.kv_log_lines(config, 1000))
        assert simulator_check(config) is None

    def test_the_simulator_runs_the_defaults_or_refuses_the_engine(self) -> None:
        from runners.sim import simulate

        config = self.default_config()
        if self.entry().sim_policy is None:
            with pytest.raises(EngineError, match="has no simulator policy"):
                simulate(config, TINY_WORKLOAD)
            return
        result = simulate(config, TINY_WORKLOAD)
        assert result.crash is None or result.crash.crash_class in CrashClass


def _parses(name: str, text: str) -> None:
    """A YAML or JSON configuration file holds a mapping."""
    if name.endswith((".yaml", ".yml")):
        assert isinstance(yaml.safe_load(text), dict), name
    elif name.endswith(".json"):
        assert isinstance(json.loads(text), dict), name


def _non_default(info: SettingInfo) -> SettingValue | None:
    """A valid value other than the default, or None when the setting has only one."""
    if info.kind == "bool":
        flipped = not bool(info.default) if info.default is not None else True
        return flipped if info.check(flipped) is None else None
    if info.kind == "choice":
        others = [c for c in info.choices if c != info.default]
        return others[0] if others else None
    base = info.default if isinstance(info.default, int | float) else info.minimum or 1
    for candidate in (base + 1, base * 2, (info.minimum or 0) + 1, info.maximum):
        if candidate is None or candidate == info.default:
            continue
        value: SettingValue = int(candidate) if info.kind == "int" else float(candidate)
        if info.check(value) is None:
            return value
    return None


__all__ = ["TINY_WORKLOAD", "EngineEntrySuite"]
