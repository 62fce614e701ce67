#!/usr/bin/env bash
# bench/gpu.sh — the one prepared GPU check of the CUDA backend (docs/cuda.md).
#
#   bench/gpu.sh prepare   on the CPU machine (no GPU needed): builds `make CUDA=1` in a copy of the tree
#                          with portable x86-64-v3 host code and sm_90 + PTX device code, writes the cache
#                          tables, and packs the binaries, the tables and the shared libraries the GPU image
#                          lacks (OpenBLAS, HDF5, GSL, Criterion, ...) into build/gpu-bundle.tar.xz (~15 MB).
#                          The GPU image has CUDA but none of the project's build dependencies.
#   bench/gpu.sh run       on the GPU machine, from the repository root, with the bundle carried
#                          (device tool: carry ["build/gpu-bundle.tar.xz"], timeout_s 600): the golden tests
#                          on the CUDA backend, the cross-backend suite, compute-sanitizer's memcheck and
#                          racecheck on the kernels, and the DiT-XL/2 benchmarks (GPU_QUALITY=ddpm-250 adds the
#                          default model's missing quality shards after the golden suites). Writes
#                          results/gpu-<card>.md and copies it with the logs to $OUT (when set).
#
# Each step of `run` has its own time limit, so the report is written even when one hangs; the whole
# run is sized for about 8 minutes on one H100 or H200.
set -uo pipefail
cd "$(dirname "$0")/.."
STEPS=${GPU_STEPS:-20} # sampling steps of the cache-table benchmark

prepare() {
    set -e
    local src=$PWD work
    work=$(mktemp -d /tmp/ebcache-gpu.XXXXXX)
    git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$work"
    make -C "$work" -j"$(nproc)" CUDA=1 CFLAGS_OPT="-std=c11 -O2 -march=x86-64-v3 -fopenmp -Wall -Wextra" \
        build/cuda/ebcache build/cuda/test_suite build/cuda/bench_gpu
    local b="$work/bundle"
    mkdir -p "$b/lib" "$b/tables"
    cp "$work"/build/cuda/{ebcache,test_suite,bench_gpu} "$b/"
    # the shared libraries beyond glibc, the C++ runtime and CUDA's own, which the GPU image provides
    ldd "$b"/ebcache "$b"/test_suite "$b"/bench_gpu | awk '/=> \// {print $3}' | sort -u |
        grep -v -E '/(libc|libm|libdl|librt|libpthread|libresolv|libstdc\+\+|libgcc_s)\.so' |
        grep -v -E '/(libcuda|libcudart|libcublas|libcublasLt)\.so' |
        xargs -r -I{} cp -L {} "$b/lib/"
    local cli="$b/ebcache"
    "$cli" schedule fora --interval 2 --steps "$STEPS" --output "$b/tables/fora2.schedule"
    "$cli" schedule fora --interval 3 --steps "$STEPS" --output "$b/tables/fora3.schedule"
    # An EB-Cache table of the released table's shape (as bench/bench_cache.c): compute the first 44% of the
    # steps, then refreshes alternate with reuse of attention only and of both, ending 2, 2, 0; cache_table.npy
    # is indexed by the sampler's index, so its last entry is the first step.
    python3 - "$STEPS" "$b/tables/ebcache.npy" <<'EOF'
import struct, sys
S, path = int(sys.argv[1]), sys.argv[2]
warm = (44 * S + 99) // 100
codes = [0 if k < warm or k == S - 1 else 2 if k >= S - 3 else (2, 0, 1)[(k - warm) % 3] for k in range(S)]
header = "{'descr': '<i8', 'fortran_order': False, 'shape': (%d,), }" % S
header += ' ' * (63 - (10 + len(header)) % 64) + '\n'
with open(path, 'wb') as f:
    f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header)) + header.encode())
    f.write(struct.pack('<%dq' % S, *codes[::-1]))
EOF
    "$cli" schedule from-npy --input "$b/tables/ebcache.npy" --steps "$STEPS" --output "$b/tables/ebcache.schedule"
    mkdir -p "$src/build"
    XZ_OPT=-T0 tar -C "$b" -cJf "$src/build/gpu-bundle.tar.xz" .
    rm -rf "$work"
    echo "wrote build/gpu-bundle.tar.xz ($(du -h "$src/build/gpu-bundle.tar.xz" | cut -f1)); on the GPU machine:"
    echo "  bench/gpu.sh run   (device tool: carry [\"build/gpu-bundle.tar.xz\"], timeout_s 600)"
}

# Runs a step for at most `limit` seconds and what is left of the run's budget, its output into $log;
# prints "ok", "FAILED (status N)", "TIMED OUT after N s" or "SKIPPED: out of time".
BUDGET=${GPU_BUDGET:-540} # seconds for `run` in all, within the device tool's 600
step() {
    local limit=$1 log=$2 left=$((BUDGET - SECONDS - 15))
    shift 2
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 10 ]; then
        echo "SKIPPED: out of time" | tee "$log"
        return
    fi
    timeout "$limit" "$@" >"$log" 2>&1
    local rc=$?
    case $rc in 0) echo ok ;; 124) echo "TIMED OUT after ${limit} s" ;; *) echo "FAILED (status $rc)" ;; esac
}

run() {
    local b=/tmp/ebcache-gpu-run logs=results/gpu-logs
    SECONDS=0
    if [ ! -f build/gpu-bundle.tar.xz ]; then
        echo "no build/gpu-bundle.tar.xz: run 'bench/gpu.sh prepare' first and carry it"
        exit 2
    fi
    rm -rf "$b" && mkdir -p "$b" "$logs" && tar -C "$b" -xJf build/gpu-bundle.tar.xz
    # cuBLASLt and the CUDA runtime: the toolkit's, else wherever the image keeps them (pip wheels)
    local cudalibs=/usr/local/cuda/lib64
    if [ ! -e "$cudalibs/libcublasLt.so.13" ] || [ ! -e "$cudalibs/libcudart.so.13" ]; then
        cudalibs=$(find /usr /opt \( -name 'libcublasLt.so.13' -o -name 'libcudart.so.13' \) -printf '%h:' 2>/dev/null)
    fi
    export LD_LIBRARY_PATH="$b/lib:$cudalibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export EBCACHE_BIN="$b/ebcache" OMP_NUM_THREADS=8
    local card slug
    card=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
    slug=$(echo "${card%%,*}" | tr 'A-Z' 'a-z' | sed -e 's/^nvidia //' -e 's/[^a-z0-9]\+/-/g' -e 's/-$//')
    local report="results/gpu-${slug:-unknown}.md" suite="$b/test_suite --jobs 1 --verbose"
    local r_backend r_golden r_mem r_race r_bench
    r_backend=$(step 90 "$logs/backend.log" $suite --filter 'backend/*')
    grep -q 'no CUDA device runs here' "$logs/backend.log" && r_backend+=", but NO CUDA DEVICE RAN (see the log)"
    if grep -q EBCACHE_DEVICE tests/golden.c; then
        r_golden=""
        for s in model diffusion cache record toca; do
            r_golden+="$s: $(step 60 "$logs/golden-$s.log" env EBCACHE_DEVICE=cuda $suite --filter "$s/*"); "
        done
    else
        r_golden="NOT RUN: tests/golden.c does not load golden models on \$EBCACHE_DEVICE yet"
    fi
    # GPU_QUALITY="ddpm-250": the default model's missing quality shards (tools/quality.sh) sampled here at
    # fp32, after the golden suites have checked this backend; they come back in $OUT to be scored.
    local r_quality="not asked for (GPU_QUALITY unset)"
    if [ -n "${GPU_QUALITY:-}" ]; then
        touch "$b/quality-start"
        r_quality=$(step 200 "$logs/quality.log" env QUALITY_SAMPLERS="$GPU_QUALITY" QUALITY_SCORE=0 \
            QUALITY_SAMPLE_ARGS="--device cuda --batch 1000" tools/quality.sh)
        local shards
        shards=$(find results/quality -name 'seed*.h5' -newer "$b/quality-start")
        if [ -n "$shards" ] && [ -n "${OUT:-}" ]; then
            tar -cf - $shards | split -b 15m - "$OUT/quality-shards.tar."
        fi
    fi
    r_bench=$(step 300 "$logs/bench.log" "$b/bench_gpu" --config XL/2 --batches 1,8,32,64 --iters 3 \
        --breakdown 32 --cache-precision bf16 --cache-batch 32 --steps "$STEPS" \
        "$b/tables/fora2.schedule" "$b/tables/fora3.schedule" "$b/tables/ebcache.schedule")
    local cs
    cs="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer) --target-processes all"
    cs+=" --error-exitcode 3"
    r_mem=$(step 90 "$logs/memcheck.log" $cs --tool memcheck $suite --filter 'backend/@(attention|linear|elem|toca)*')
    # Shared memory is in the reductions (reduce.cu), which the elementwise test runs, and in ToCa's selection
    # (toca.cu, one block per sample), which its backend test runs. Not the attention
    # test: racecheck reports hazards inside cuBLAS's Hopper GEMM kernels (nvjet_*, synchronised through TMA
    # barriers), and excluding those kernels made the sanitizer fail with an internal error (H200, 2026-11-27).
    r_race=$(step 120 "$logs/racecheck.log" $cs --tool racecheck $suite --filter 'backend/@(elementwise|toca_select)*')
    {
        echo "# bench/gpu.sh on ${card:-an unknown GPU} — $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo
        echo "| check | result | log |"
        echo "|---|---|---|"
        echo "| cross-backend suite (backend/*: ops, random models, schedules) | $r_backend | gpu-logs/backend.log |"
        echo "| golden suites on cuda fp32 (EBCACHE_DEVICE=cuda) | $r_golden | gpu-logs/golden-*.log |"
        echo "| compute-sanitizer memcheck (kernels) | $r_mem | gpu-logs/memcheck.log |"
        echo "| compute-sanitizer racecheck (shared memory) | $r_race | gpu-logs/racecheck.log |"
        echo "| quality shards on cuda fp32 (GPU_QUALITY=${GPU_QUALITY:-}) | $r_quality | gpu-logs/quality.log |"
        echo "| benchmarks | $r_bench | gpu-logs/bench.log |"
        echo
        grep -h -E '^\[(FAIL|PASS|SKIP)\]|Synthesis|rel err' "$logs"/backend.log "$logs"/golden-*.log 2>/dev/null |
            grep -v 'Test is disabled' | sed 's/^/    /'
        echo
        sed -n '/^## /,$p' "$logs/bench.log"
        echo "Wall time of bench/gpu.sh run: $SECONDS s."
    } >"$report"
    echo "wrote $report"
    if [ -n "${OUT:-}" ]; then
        cp "$report" "$OUT/" && tar -C results -czf "$OUT/gpu-logs.tar.gz" gpu-logs
    fi
    cat "$report"
}

case "${1:-}" in
prepare) prepare ;;
run) run ;;
*) echo "usage: bench/gpu.sh prepare | run   (see the top of bench/gpu.sh)" >&2; exit 2 ;;
esac
