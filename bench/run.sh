#!/usr/bin/env bash
# make bench: ebcache against the PyTorch reference, in one run, same threads,
# same OpenBLAS kernels, same OpenMP wait policy. Prints a table and writes
# results/bench.md. Ratios are what to compare: the machines are shared and
# absolute numbers move from run to run.
#
# Both sides load the same libopenblas.so.0 (Debian's torch reaches it through
# libblas.so.3), so one OPENBLAS_CORETYPE picks both sides' kernels: the core
# ebcache runs on here (its re-exec's choice, or the OPENBLAS_CORETYPE you set),
# or BENCH_CORE. Each side reports the core it ran on; a mismatch stops the run.
# OMP_WAIT_POLICY is passive for both (what ebcache sets for itself) unless set.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${BENCH_THREADS:-$(nproc)}
iters=${BENCH_ITERS:-2}
rounds=${BENCH_ROUNDS:-5}
extra_rounds=${BENCH_EXTRA_ROUNDS:-2}
out=results/bench.md
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp".*' EXIT
py=/usr/bin/python3
eb_core=$(build/opt/bench_forward --core)
own_core=$(env -u OPENBLAS_CORETYPE "$py" bench/bench_ref.py --core)
export OPENBLAS_CORETYPE=${BENCH_CORE:-$eb_core} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OMP_NUM_THREADS=$threads
core=$OPENBLAS_CORETYPE

load() { cut -d' ' -f1-3 /proc/loadavg | sed 's/ /, /g'; }
field() { sed -E "s|.* ([0-9.]+) $1.*|\\1|"; }           # the number before $1 in a bench line
core_of() { sed -E 's/.*OpenBLAS core ([A-Za-z0-9]+).*/\1/'; }
# "median (min–max)" of the numbers on stdin, with the given printf format
spread() {
  sort -g | awk -v f="$1" '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf(f " (" f "–" f ")", m, v[1], v[NR]) }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
check_core() { # side line
  local got
  got=$(core_of <<<"$2")
  [ "$got" = "$core" ] || { echo "bench: $1 ran on OpenBLAS core '$got', not '$core': $2" >&2; exit 1; }
}
warnings=() noise=()

# $1 rounds of the commands in the arrays eb_cmd and pt_cmd, alternately (who goes first alternates too);
# sets eb_lines, pt_lines (their output lines), eb_rates, pt_rates and ratios (one entry per round).
interleave() {
  local n=$1 r e p
  eb_lines=() pt_lines=() eb_rates=() pt_rates=() ratios=()
  for r in $(seq "$n"); do
    if [ $((r % 2)) = 1 ]; then
      e=$("${eb_cmd[@]}") p=$("${pt_cmd[@]}")
    else
      p=$("${pt_cmd[@]}") e=$("${eb_cmd[@]}")
    fi
    check_core ebcache "$e"
    check_core PyTorch "$p"
    eb_lines+=("$e") pt_lines+=("$p")
    eb_rates+=("$(field images/s <<<"$e")") pt_rates+=("$(field images/s <<<"$p")")
    ratios+=("$(echo "${eb_rates[-1]} / ${pt_rates[-1]}" | bc -l)")
  done
}

# One DiT, $2 rounds (interleave); sets eb_gflops too.
measure() {
  local cfg=$1 l
  eb_cmd=(build/opt/bench_forward "$cfg" 8 "$iters") pt_cmd=("$py" bench/bench_ref.py "$cfg" 8 "$iters" "$threads")
  interleave "$2"
  eb_gflops=()
  for l in "${eb_lines[@]}"; do eb_gflops+=("$(field GFLOP/s <<<"$l")"); done
}
list() { printf '%s\n' "$@"; }

# SD-VAE decode and the FID Inception against PyTorch (issue 18), rounds as the DiT forward's: its own
# section of results/bench.md; `bench/run.sh images` prints it alone (without writing the file).
images_section() {
  local vae_py=build/venv-diffusers/bin/python goal=1.3 row warnings=()
  [ -x "$vae_py" ] || { echo "bench: $vae_py is missing (make build/venv-diffusers/.installed)" >&2; exit 1; }
  echo "## SD-VAE decode and FID Inception against PyTorch — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "$threads threads on both sides, OpenBLAS core $core, OMP_WAIT_POLICY=$OMP_WAIT_POLICY; load average at the start:"
  echo "$(load). Random weights on both sides; each side is one process per round, a warm-up and $iters timed runs; $rounds rounds,"
  echo "alternating (who goes first alternates too); median over the rounds, (min–max) in brackets, the ratio per round."
  echo
  echo "- decode: one 32×32×4 latent → a 256² image, the sd-vae configuration; ebcache's eb_vae_decode (bench/bench_vae.c)"
  echo "  against diffusers $("$vae_py" -c 'import diffusers; print(diffusers.__version__)')'s AutoencoderKL.decode (bench/bench_vae_ref.py)."
  echo "- Inception: pool, spatial and logits of 8 random 256² uint8 images, the resize to 299 included; ebcache's"
  echo "  eb_inception_forward (bench/bench_inception.c) against reference/inception_ref.py's network, pytorch-fid's"
  echo "  architecture in plain PyTorch (bench/bench_inception_ref.py)."
  echo
  echo "| work | ebcache images/s | PyTorch images/s | ratio | load after |"
  echo "|---|---|---|---|---|"
  for row in decode inception; do
    if [ $row = decode ]; then
      eb_cmd=(build/opt/bench_vae decode 32 "$iters") pt_cmd=("$vae_py" bench/bench_vae_ref.py 32 "$iters" "$threads")
    else
      eb_cmd=(build/opt/bench_inception 256 8 "$iters") pt_cmd=("$py" bench/bench_inception_ref.py 256 8 "$iters" "$threads")
    fi
    interleave "$rounds"
    echo "| $row | $(list "${eb_rates[@]}" | spread %.3f) | $(list "${pt_rates[@]}" | spread %.3f) |" \
      "$(list "${ratios[@]}" | spread %.2f)× | $(load) |"
    lo=$(list "${ratios[@]}" | sort -g | head -1) hi=$(list "${ratios[@]}" | sort -g | tail -1)
    if (($(echo "$hi < 1" | bc -l))); then
      warnings+=("**Warning:** $row: every round's ratio is below 1 — a measurement problem (load?) or a slow kernel")
    elif (($(echo "$(list "${ratios[@]}" | median) < $goal" | bc -l))); then
      warnings+=("**Note:** $row: the median ratio is below the issue's goal of ${goal}×")
    fi
  done
  echo
  for w in "${warnings[@]}"; do echo "$w"; echo; done
}

if [ "${1:-}" = images ]; then
  images_section
  exit 0
fi

{
  gemm_line=$("$py" bench/bench_ref.py --gemm "$threads")
  check_core "the GEMM probe" "$gemm_line"
  gemm=$(field GFLOP/s <<<"$gemm_line")
  echo "# make bench — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p'), family $(lscpu | sed -n 's/^CPU family: *//p')" \
    "model $(lscpu | sed -n 's/^Model: *//p'), $(nproc) cores; $threads threads on both sides"
  echo "- OpenBLAS core, both sides: $core (each side reported it; ebcache alone would pick $eb_core," \
    "OpenBLAS alone, as PyTorch gets it by default, $own_core); OMP_WAIT_POLICY=$OMP_WAIT_POLICY on both sides"
  echo "- large-GEMM rate on this core (2048³ sgemm, best of 5): $gemm GFLOP/s"
  echo "- load average (1, 5, 15 min) at the start: $(load)"
  echo
  echo "Forward of DiT with random weights, 32×32×4 latents, batch 8, no guidance. ebcache and PyTorch"
  echo "$(${py} -c 'import torch; print(torch.__version__)') run alternately (who goes first alternates too), $rounds rounds of $iters forwards"
  echo "each; median over the rounds, (min–max) in brackets; the ratio is taken per round (the two runs of a round"
  echo "are seconds apart) and its median and range reported. PyTorch GFLOP/s = ebcache's FLOP count at PyTorch's rate."
  echo
  echo "| model | ebcache images/s | ebcache GFLOP/s | PyTorch images/s | PyTorch GFLOP/s | ratio | load after |"
  echo "|---|---|---|---|---|---|---|"
  for cfg in S/2 B/2; do
    measure "$cfg" "$rounds"
    flop_per_image=$(echo "$(list "${eb_gflops[@]}" | median) / $(list "${eb_rates[@]}" | median)" | bc -l)
    pt_gflops=$(echo "$(list "${pt_rates[@]}" | median) * $flop_per_image" | bc -l)
    ratio=$(list "${ratios[@]}" | median)
    echo "| DiT-$cfg | $(list "${eb_rates[@]}" | spread %.2f) | $(list "${eb_gflops[@]}" | spread %.0f) |" \
      "$(list "${pt_rates[@]}" | spread %.2f) | $(printf %.0f "$pt_gflops") | $(list "${ratios[@]}" | spread %.2f)× | $(load) |"
    # Same sgemm on both sides: ebcache is at most as far ahead as PyTorch is below the GEMM rate.
    lo=$(list "${ratios[@]}" | sort -g | head -1) hi=$(list "${ratios[@]}" | sort -g | tail -1)
    bound=$(echo "$gemm / $pt_gflops" | bc -l)
    if (($(echo "$hi < 1" | bc -l))); then
      warnings+=("**Warning:** DiT-$cfg: every round's ratio is below 1 with the same kernels — a measurement problem (load?), not a result")
    elif (($(echo "$lo < 1" | bc -l))); then
      warnings+=("**Note:** DiT-$cfg: the rounds' ratios straddle 1: no difference between the two sides is measurable here")
    fi
    if (($(echo "$ratio > $bound" | bc -l))); then
      warnings+=("**Warning:** DiT-$cfg: ratio $(printf %.2f "$ratio") is above the GEMM rate ÷ PyTorch's rate ($(printf %.2f "$bound")) — a measurement problem, not a result")
    fi
    for side in eb_rates pt_rates; do
      declare -n v=$side
      noise+=("$(echo "100 * ($(list "${v[@]}" | sort -g | tail -1) - $(list "${v[@]}" | sort -g | head -1))" \
        "/ $(list "${v[@]}" | median)" | bc -l)")
      unset -n v
    done
  done
  echo
  echo "Noise: one side's rounds spread by up to $(list "${noise[@]}" | sort -g | tail -1 | xargs printf %.0f)% of their median."
  echo "The bench itself keeps about $threads threads runnable, so a load average above about $((threads + 1)) means"
  echo "other programs competed for the cores."
  echo
  for w in "${warnings[@]}"; do echo "$w"; echo; done

  # What the kernels are worth: both sides on OpenBLAS's generic kernels.
  saved=$core
  export OPENBLAS_CORETYPE=Prescott
  core=Prescott
  measure S/2 "$extra_rounds"
  core=$saved
  export OPENBLAS_CORETYPE=$core
  echo "Generic kernels: with OPENBLAS_CORETYPE=Prescott on both sides ($extra_rounds rounds), DiT-S/2 runs"
  echo "$(list "${eb_rates[@]}" | spread %.2f) images/s in ebcache and $(list "${pt_rates[@]}" | spread %.2f) in PyTorch" \
    "(ratio $(list "${ratios[@]}" | spread %.2f)×; load after: $(load))."
  if [ "$own_core" = "$eb_core" ]; then
    echo "Here OpenBLAS picks $own_core itself, so ebcache's re-exec changes no kernels; on a CPU OpenBLAS does not know"
    echo "(it then loads Prescott), the re-exec to $eb_core is what separates these two lines."
  else
    echo "Here OpenBLAS alone loads $own_core; ebcache re-executes itself with $eb_core: what the re-exec buys is"
    echo "the first table's ebcache column against this line's when $own_core is Prescott."
  fi
  echo

  # PyTorch as it runs by default: libgomp's wait policy spins before sleeping.
  p=$(env -u OMP_WAIT_POLICY "$py" bench/bench_ref.py S/2 8 1 "$threads")
  check_core PyTorch "$p"
  echo "PyTorch with OMP_WAIT_POLICY unset (libgomp spins before it sleeps), DiT-S/2, one round of one forward:"
  echo "$(field images/s <<<"$p") images/s at load $(load). On a busy machine the spinning threads lose whole time"
  echo "slices to each other, so that figure depends on the load, not on the kernels."
  echo
  images_section
  echo "DiT-XL/2, batch 1, one forward (ebcache):"
  echo
  echo '```'
  build/opt/bench_forward XL/2 1 1
  echo '```'
  echo
  # SmoothCache's and MagCache's tables come from a recording of the model they are timed on: bench_cache
  # writes its random DiT-B/2, `record` samples it on the same sampler, `search` meets two speed targets.
  build/opt/bench_cache --write-model "$tmp.b2.safetensors" B/2
  bin/ebcache record --model "$tmp.b2.safetensors" --sampler ddim --steps 10 --cfg-scale 1.5 --n 2 --seed 7 \
    --no-eps-q --output "$tmp.rec.h5" 2>/dev/null
  tables=()
  for m in smoothcache magcache; do
    for x in 1.25 1.5; do
      bin/ebcache search --method $m --record "$tmp.rec.h5" --model "$tmp.b2.safetensors" --target-speedup $x \
        --output "$tmp.$m$x" 2>/dev/null && tables+=("$tmp.$m$x")
    done
  done
  # Learning-to-Cache: a router trained on this model (tools/train_l2c.py, pure-noise data; 20 iterations,
  # ~1.5 min: the timing depends on the table's reuse pattern, not on how well the router learned).
  /usr/bin/python3 tools/train_l2c.py "$tmp.b2.safetensors" --respacing 10 --data noise --iters 20 --batch 2 \
    --lr 0.05 --output "$tmp.l2c.pt" --scores "$tmp.l2c.h5" 2>/dev/null
  for x in 1.25 1.5; do
    bin/ebcache search --method l2c --router "$tmp.l2c.h5" --record "$tmp.rec.h5" --model "$tmp.b2.safetensors" \
      --target-speedup $x --output "$tmp.l2c$x" 2>/dev/null && tables+=("$tmp.l2c$x")
  done
  echo "(SmoothCache, MagCache and L2C rows: \`search --method smoothcache|magcache|l2c\` at 1.25× and 1.5× targets"
  echo "on a 10-step DDIM recording of 2 samples of this random DiT-B/2; L2C's router trained on it by"
  echo "tools/train_l2c.py, 20 iterations on noise.)"
  echo
  build/opt/bench_cache B/2 10 "$((iters + 1))" "${tables[@]}"
  echo
  echo "Where ToCa's time goes (bench_toca: one DiT-B/2 block, R = 0.07):"
  echo
  build/opt/bench_toca B/2 0.07 "$((2 * iters + 1))"
  echo
  build/opt/bench_record "$((iters + 1))"
  echo
  echo "The Python package's schedule hooks in PyTorch (bench/bench_python.py, DiT-S/2, one thread):"
  echo
  echo '```'
  OMP_NUM_THREADS=1 /usr/bin/python3 bench/bench_python.py
  echo '```'
  echo
  echo "ToCa on the shipped model (DDPM 50 steps, guidance 1.5, 32 samples; bench/toca_fmnist.sh), load $(load):"
  echo
  bench/toca_fmnist.sh bin/ebcache 32
  echo
  echo "Strong scaling under mpirun (bench/bench_mpi.sh: 1 rank against 2, one thread each):"
  echo
  EBCACHE_BIN=bin/ebcache bench/bench_mpi.sh
  echo
  echo "Load average at the end: $(load)."
} | tee "$tmp"
mkdir -p results && mv "$tmp" "$out" && rm -f "$tmp".* && trap - EXIT
echo "wrote $out"
