"""Truth profiles of the emulator (`runners.sim.profile`, ``runners.sim.serve --profile``).

A profile scales, per engine, the calibration the emulator runs with (compute efficiency,
memory bandwidth, per-step overhead, usable memory) and sets its noise; a bad file is one clear
error naming the file and the field, exit 2, and nothing started.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runners.catalog import get_gpu, get_model
from runners.engines import resolve
from runners.errors import ProfileError
from runners.local import EmulatorLaunch, LocalRunner, RealRunSettings
from runners.sim import serve
from runners.sim.memory import plan_memory
from runners.sim.params import fitted_calibration
from runners.sim.perf import StepModel
from runners.sim.profile import identity_profile, load_profile
from runners.sim.runner import SimRunner
from runners.types import Candidate, NodeGroup, Placement, ServingConfig, Workload

NODE = NodeGroup("h100", "H100-SXM-80GB", 8)
H200 = "H200-SXM-141GB"


def write(tmp_path: Path, text: str, name: str = "profile.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config(engine: str = "vllm", tp_flag: str = "tensor-parallel-size") -> ServingConfig:
    candidate = Candidate.make(
        engine,
        {"vllm": "0.33.0", "sglang": "0.5.23"}[engine],
        "Qwen3-30B-A3B",
        "Qwen/Qwen3-30B-A3B",
        "bf16",
        {tp_flag: 4},
    )
    resolved = resolve(candidate, NODE)
    assert isinstance(resolved, ServingConfig)
    return resolved


def test_a_profile_scales_each_engine_on_its_own(tmp_path: Path) -> None:
    profile = load_profile(
        write(
            tmp_path,
            "engines:\n"
            "  vllm: {compute_efficiency: 0.5, memory_bandwidth_efficiency: 0.8,"
            " step_overhead: 3.0, usable_memory: 0.9}\n"
            "noise: {run: 0.02, step: 0.03, stall_probability: 0.001, stall_ms: 20, seed: 7}\n",
        )
    )
    base = fitted_calibration()
    vllm = profile.calibration("vllm", NODE.gpu)
    assert vllm.engine("vllm").kernel == pytest.approx(base.engine("vllm").kernel * 0.5)
    assert vllm.engine("vllm").cpu_step_s == pytest.approx(base.engine("vllm").cpu_step_s * 3)
    bandwidth = base.efficiency(NODE.gpu).mem_bw
    assert vllm.efficiency(NODE.gpu).mem_bw == pytest.approx(bandwidth * 0.8)
    # an engine the profile does not name runs as the study's simulator does
    sglang = profile.calibration("sglang", NODE.gpu)
    assert sglang.engine("sglang") == base.engine("sglang")
    assert sglang.efficiency(NODE.gpu).dense_bf16 == base.efficiency(NODE.gpu).dense_bf16
    assert profile.noise.run_sigma == 0.02 and profile.noise.stall_s == pytest.approx(0.02)
    assert profile.noise_seed() == 7

    slow = StepModel(config(), 4096, vllm)
    shipped = StepModel(config(), 4096, base)
    assert slow.step_s(2048, 8, 8, 8 * 1024, 0.0, 0.0) > shipped.step_s(2048, 8, 8, 8 * 1024, 0, 0)
    assert plan_memory(config(), vllm).kv_tokens < plan_memory(config(), base).kv_tokens


def test_a_gpu_whose_efficiencies_are_transferred_keeps_them(tmp_path: Path) -> None:
    """H200 takes H100's fitted values; a profile must scale those, not the raw priors."""
    profile = load_profile(write(tmp_path, "engines: {vllm: {memory_bandwidth_efficiency: 1.0}}"))
    assert profile.calibration("vllm", H200).efficiency(H200) == fitted_calibration().efficiency(
        H200
    )
    assert get_gpu(H200).name == H200 and get_model("Qwen3-30B-A3B").is_moe


def test_default_section_applies_to_engines_not_named(tmp_path: Path) -> None:
    profile = load_profile(
        write(tmp_path, "engines:\n  default: {step_overhead: 2}\n  vllm: {step_overhead: 1}\n")
    )
    assert profile.scales("sglang").step_overhead == 2
    assert profile.scales("vllm").step_overhead == 1
    assert identity_profile().scales("vllm").compute_efficiency == 1.0
    seeds = {identity_profile().noise_seed() for _ in range(3)}
    assert len(seeds) == 3, "without a fixed seed, every start is a new run"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("engines: {vllm: {compute_eficiency: 0.5}}", "engines.vllm.compute_eficiency"),
        ("engines: {tgi: {compute_efficiency: 0.5}}", "engines.tgi"),
        ("engines: {vllm: {usable_memory: 3}}", "engines.vllm.usable_memory"),
        ("noise: {run: -1}", "noise.run"),
        ("noise: {seed: many}", "noise.seed"),
        ("- just\n- a list\n", "YAML mapping"),
        ("engines: {vllm: [unclosed", "not a valid YAML"),
    ],
)
def test_a_bad_profile_names_the_file_and_the_field(tmp_path: Path, text: str, named: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert str(path) in str(caught.value)
    assert named in str(caught.value)


def test_a_missing_profile_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot be read"):
        load_profile(tmp_path / "nowhere.yaml")


def test_the_emulator_refuses_a_bad_profile_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "engines: {vllm: {compute_efficiency: zero}}")
    argv = ["--profile", str(bad), "--", "vllm", "serve", "Qwen/Qwen3-30B-A3B"]
    assert serve.main(argv) == serve.EXIT_USAGE
    err = capsys.readouterr().err
    assert "engines.vllm.compute_efficiency" in err and "Traceback" not in err


def test_the_emulator_reads_the_weight_dtype_and_profile_from_its_options(tmp_path: Path) -> None:
    path = write(tmp_path, "engines: {vllm: {usable_memory: 0.9}}")
    options = serve.parse_options(
        ["--weight-dtype", "fp8", "--profile", str(path), "--", "vllm", "serve", "Qwen/Qwen3-8B"]
    )
    assert options.weight_dtype == "fp8"
    assert options.calibration.efficiency(options.gpu).usable_scale == pytest.approx(
        fitted_calibration().efficiency(options.gpu).usable_scale * 0.9
    )


@pytest.mark.slow
def test_the_emulated_engine_behaves_as_its_profile_says(tmp_path: Path) -> None:
    """Real processes and HTTP: slower kernels and more host overhead serve fewer tokens/s."""
    slow = write(
        tmp_path,
        "engines: {vllm: {compute_efficiency: 0.3, memory_bandwidth_efficiency: 0.3,"
        " step_overhead: 6}}\n",
    )
    workload = Workload("w", "random", 256, input_len=512, output_len=128)
    candidate = Candidate.make(
        "vllm", "0.33.0", "Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B", "bf16",
        {"tensor-parallel-size": 8},
    )  # fmt: skip
    placement = Placement(NODE, tuple(range(8)))
    throughput = {}
    for name, profile in (("truth", None), ("slow", slow)):
        launch = EmulatorLaunch(time_scale=2.0, startup_s=0.2, profile=profile)
        runner = LocalRunner(tmp_path / name, RealRunSettings(), emulator=launch, num_warmups=0)
        outcome = runner.run(candidate, workload, placement)
        assert outcome.status == "ok", outcome.crash
        assert outcome.metrics is not None
        throughput[name] = outcome.metrics.output_throughput_tok_s
    assert throughput["slow"] < 0.8 * throughput["truth"], throughput


def test_the_in_process_runner_with_a_profile_measures_what_the_emulator_would(
    tmp_path: Path,
) -> None:
    """`SimRunner(profile=...)`: the same calibration as the emulator's, without a process."""
    slow = load_profile(
        write(tmp_path, "engines: {vllm: {compute_efficiency: 0.5, step_overhead: 3}}\n")
    )
    workload = Workload("w", "random", 64, input_len=512, output_len=64)
    candidate = Candidate.make(
        "vllm", "0.33.0", "Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B", "bf16",
        {"tensor-parallel-size": 4},
    )  # fmt: skip
    placement = Placement(NODE, (0, 1, 2, 3))
    plain = SimRunner().run(candidate, workload, placement)
    profiled = SimRunner(profile=slow).run(candidate, workload, placement)
    sglang = SimRunner(profile=slow).run(
        Candidate.make(
            "sglang", "0.5.23", "Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B", "bf16", {"tp-size": 4}
        ),
        workload,
        placement,
    )
    unscaled = SimRunner().run(
        Candidate.make(
            "sglang", "0.5.23", "Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B", "bf16", {"tp-size": 4}
        ),
        workload,
        placement,
    )
    assert plain.metrics is not None and profiled.metrics is not None
    assert profiled.metrics.output_throughput_tok_s < 0.9 * plain.metrics.output_throughput_tok_s
    assert sglang.metrics is not None and unscaled.metrics is not None
    assert sglang.metrics.output_throughput_tok_s == unscaled.metrics.output_throughput_tok_s
