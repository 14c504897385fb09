"""The GPU catalogue: the GPUs users name, figures as sourced (unknown stays unknown, and says
what it limits), and simulator efficiencies carried over by architecture generation."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from runners.catalog import Architecture, get_gpu, known_gpus
from runners.sim.params import GENERATION_REFERENCE, efficiency_note, fitted_calibration

SOURCED = Path(__file__).resolve().parent.parent / "data" / "gpus" / "gpus.csv"
# Catalogue entries older than the sourced table, whose own sources give these figures:
# usable memory as the CUDA runtime reports it, and a few figures the table left empty.
OWN_SOURCE = {
    ("H100-SXM-80GB", "memory_gib"),
    ("H200-SXM-141GB", "memory_gib"),
    ("A100-SXM-80GB", "memory_gib"),
    ("B200", "memory_gib"),
    ("L40S", "memory_gib"),
    ("H100-SXM-80GB", "bf16_dense_tflops"),
    ("H200-SXM-141GB", "bf16_dense_tflops"),
    ("H100-SXM-80GB", "fp8_dense_tflops"),
    ("H200-SXM-141GB", "fp8_dense_tflops"),
    ("MI300X", "memory_gib"),
    ("MI300X", "interconnect_gb_s_per_gpu"),
}
COLUMNS = {
    "memory_gib": "memory_gib_usable",
    "hbm_tb_s": "hbm_tb_s",
    "bf16_dense_tflops": "bf16_tflops",
    "fp8_dense_tflops": "fp8_tflops",
    "fp4_dense_tflops": "fp4_tflops",
    "interconnect_gb_s_per_gpu": "link_gb_s",
}


def rows() -> list[dict[str, str]]:
    with SOURCED.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    "name",
    [
        "H100",
        "H100 SXM",
        "H100-PCIe",
        "H200",
        "B200",
        "GB200",
        "A100",
        "A100-40GB",
        "L40S",
        "L4",
        "A10G",
        "H20",
        "RTX 4090",
        "rtx_4090",
        "MI300X",
        "MI325X",
        "Ascend 910B",
    ],
)
def test_the_gpus_users_name_are_known(name: str) -> None:
    assert get_gpu(name).name in known_gpus()


@pytest.mark.parametrize("row", rows(), ids=lambda r: r["name"])
def test_figures_agree_with_the_sourced_table(row: dict[str, str]) -> None:
    if row["name"] == "Ascend-910B":
        pytest.skip("no figure of the Ascend 910B was verified; the entry keeps its own source")
    gpu = get_gpu(row["name"])
    for column, field in COLUMNS.items():
        if (row["name"], column) in OWN_SOURCE:
            continue
        value = getattr(gpu, field)
        if row[column]:
            assert value == pytest.approx(float(row[column])), (column, value)
        else:
            assert value is None, f"{column} is unknown in the sources, the catalogue has {value}"


def test_unknown_figures_say_what_they_limit() -> None:
    h20 = " ".join(get_gpu("H20").unknown_figures())
    assert "FP8 dense TFLOPS unknown" in h20 and "cannot be simulated" in h20
    rtx = " ".join(get_gpu("RTX 4090").unknown_figures())
    assert "intra-node link bandwidth unknown" in rtx and "more than one GPU" in rtx
    assert get_gpu("H100").unknown_figures() == ()


def test_traits_are_fields_never_names() -> None:
    assert get_gpu("H20").architecture is Architecture.HOPPER and get_gpu("H20").fp8_compute
    assert get_gpu("GB200").fp4_compute and get_gpu("GB200").link_domain_gpus == 72
    assert get_gpu("A10G").compute_capability == (8, 6) and not get_gpu("A10G").fp8_compute
    assert get_gpu("L4").interconnect == "pcie"


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("L4", "L40S-48GB"),
        ("RTX-4090", "L40S-48GB"),
        ("H20", "H100-SXM-80GB"),
        ("H100-PCIe-80GB", "H100-SXM-80GB"),
        ("A10G", "A100-SXM-80GB"),
        ("A100-SXM-40GB", "A100-SXM-80GB"),
        ("GB200", "B200-SXM-180GB"),
        ("MI325X", "MI300X-192GB"),
    ],
)
def test_never_measured_gpus_carry_their_generations_efficiencies(
    name: str, reference: str
) -> None:
    gpu = get_gpu(name)
    assert GENERATION_REFERENCE[gpu.architecture] == reference
    calib = fitted_calibration()
    assert calib.efficiency(gpu) == calib.efficiency(reference)
    note = efficiency_note(gpu)
    assert gpu.name in note and reference in note and "never measured" in note


def test_measured_gpus_have_no_carried_over_note() -> None:
    assert efficiency_note(get_gpu("H100")) == ""
    assert efficiency_note(get_gpu("A100")) == ""
