#!/usr/bin/env bash
# The GPU check in one script: builds the release binaries, runs the CPU-vs-wgpu parity tests with
# REQUIRE_GPU=1 (a missing adapter fails them), then the GPU benchmarks, and writes everything to
# one folder: OUT (the device machine's output folder) or the first argument, else
# bench-results/gpu-<date>.
#
#   bash bench/gpu.sh [FOLDER]
#
# Environment: MAX_CELLS caps the solver benchmark's cases (B·N·K; default 4e9, which runs every
# case that fits the adapter's limits: on an H200 in minutes, on a software adapter use 2e7);
# SEEDS the coffee runs of the devices benchmark (default 5).
# On a machine whose Vulkan loader is missing, unpack libvulkan1 first (see the device README);
# VK_DRIVER_FILES may name the vendor's ICD file.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-bench-results/gpu-$(date +%Y%m%d-%H%M%S)}}"
mkdir -p "$out"
export REQUIRE_GPU=1
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
status=0
step() { # name, command...: runs it, logs to $out/name.log, records the exit code
    local name=$1; shift
    local start=$(date +%s)
    "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc in $(( $(date +%s) - start )) s" | tee -a "$out/summary.txt"
    [ $rc -eq 0 ] || status=1
    return $rc
}
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
    ldconfig -p | grep -c libvulkan | sed 's/^/libvulkan entries: /'
} >"$out/machine.txt" 2>&1
step build cargo build --release --locked -p clot-pipeline -p clot-bench || { cat "$out/build.log" | tail -30; exit 1; }
step parity_stages cargo test --release --locked -p clot-stages --features wgpu --test gpu_parity --test shaders -- --nocapture
step parity_pipeline cargo test --release --locked -p clot-pipeline --test device -- --nocapture
step gpu_solver sh -c "target/release/clot-bench gpu-solver --max-cells ${MAX_CELLS:-4e9} --json > '$out/gpu_solver.json'"
# whole runs on both devices (the resident training step on wgpu): coffee over five seeds, and the
# large synthetic set of the CPU benchmark (52 videos of ~2 500 frames, D = 15, K = 12)
step devices_coffee sh -c "target/release/clot-bench devices --seeds ${SEEDS:-5} --json > '$out/devices_coffee.json'"
big="${TMPDIR:-/tmp}/clot-big-data"
step synth_large target/release/clot -q synth --videos 52 --median-len 2500 --dim 15 --actions 12 --activity big --out "$big"
step devices_large sh -c "target/release/clot-bench devices --layout '$big' --activity big --actions 12 --mlp 15,128,40 --epochs 30 --seeds 1 --json > '$out/devices_large.json'"
grep -h "on \|max |Δ|\|salat on" "$out"/parity_*.log | sort -u >"$out/parity_summary.txt"
echo "results in $out" | tee -a "$out/summary.txt"
exit $status
