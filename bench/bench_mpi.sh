#!/usr/bin/env bash
# bench/bench_mpi.sh — strong scaling under mpirun (docs/distributed.md), called by bench/run.sh: one job
# on 1 rank against the same job on 2 ranks, one thread per rank, in interleaved rounds (the side that
# goes first alternates), for `sample` and for a small `ablate` grid (fresh cells each run). Prints a
# markdown table: the job's wall-clock speedup (1 rank / 2 ranks, per round, median and min–max), the
# speedup of the sampling alone (the slowest rank's, from the file's wall_seconds: no MPI start-up, no
# merge), and the merge of the parts as a fraction of the 2-rank job; as a control of the machine, the same
# split without MPI: the two halves of the samples as two independent processes at once, against the whole
# in one (what two ranks could reach here at best). The load average goes next to it.
#   BENCH_MPI_ROUNDS (5), BENCH_MPI_N (32 samples), EBCACHE_BIN (bin/ebcache)
set -euo pipefail
cd "$(dirname "$0")/.."
E=$(realpath "${EBCACHE_BIN:-bin/ebcache}")
rounds=${BENCH_MPI_ROUNDS:-5}
n=${BENCH_MPI_N:-32}
model=$PWD/data/dit_fmnist.safetensors classifier=$PWD/data/classifier.safetensors
T=$(mktemp -d /tmp/ebcache_bench_mpi_XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi="mpirun --allow-run-as-root --oversubscribe --bind-to none"
load() { cut -d' ' -f1-3 /proc/loadavg | sed 's/ /, /g'; }
now() { date +%s.%N; }
# "median (min–max)" of the numbers on stdin, printf format $1 (%.2f)
spread() {
  sort -g | awk -v f="${1:-%.2f}" '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf(f " (" f "–" f ")", m, v[1], v[NR]) }'
}
attr() { h5dump -m %.17g -a "/$1" "$2" | sed -n 's/.*(0): \([0-9.e+-]*\).*/\1/p'; }

# run RANKS CMD...: the job's wall seconds into $wall, its log in $T/log
run() {
  local ranks=$1 t0
  shift
  t0=$(now)
  if [ "$ranks" = 1 ]; then "$E" "$@" 2>"$T/log"; else $mpi -np "$ranks" "$E" "$@" 2>"$T/log"; fi ||
    { echo "bench_mpi: $* on $ranks ranks failed: $(cat "$T/log")" >&2; exit 1; }
  wall=$(echo "$(now) - $t0" | bc -l)
}

S=(sample --model "$model" --steps 20 --batch 4 --threads 1) # --n follows
A=(ablate "$PWD/tests/mpi/grid.spec" --model "$model" --threads 1 --classifier "$classifier") # 6 rows
job_s=() sampling_s=() merge_f=() job_a=() control=()
load_before=$(load)
for r in $(seq "$rounds"); do
  order="1 2"
  [ $((r % 2)) = 0 ] && order="2 1"
  for ranks in $order; do
    run "$ranks" "${S[@]}" --n "$n" --output "$T/s$ranks.h5"
    eval "sj$ranks=$wall"
    eval "ss$ranks=$(attr wall_seconds "$T/s$ranks.h5")"
    if [ "$ranks" = 2 ]; then
      merge=$(sed -n 's/.*(merge \([0-9.]*\) s).*/\1/p' "$T/log")
      merge_f+=("$(echo "$merge / $wall" | bc -l)")
    fi
    rm -rf "$T/cells$ranks" "$T/res$ranks"
    run "$ranks" "${A[@]}" --cells "$T/cells$ranks" --results "$T/res$ranks"
    eval "aj$ranks=$wall"
  done
  t0=$(now) # the control: the whole in one process, then the two halves as two processes at once
  "$E" "${S[@]}" --n "$n" --output "$T/c1.h5" 2>"$T/log"
  t1=$(now)
  "$E" "${S[@]}" --n $((n / 2)) --output "$T/c2.h5" 2>"$T/log" &
  "$E" "${S[@]}" --n $((n - n / 2)) --seed 1 --output "$T/c3.h5" 2>"$T/log"
  wait
  control+=("$(echo "($t1 - $t0) / ($(now) - $t1)" | bc -l)")
  h5dump -d /samples -b LE -o "$T/a.bin" "$T/s1.h5" >/dev/null && h5dump -d /samples -b LE -o "$T/b.bin" "$T/s2.h5" >/dev/null &&
    cmp -s "$T/a.bin" "$T/b.bin" || { echo "bench_mpi: 1 and 2 ranks sampled different bits" >&2; exit 1; }
  job_s+=("$(echo "$sj1 / $sj2" | bc -l)") sampling_s+=("$(echo "$ss1 / $ss2" | bc -l)")
  job_a+=("$(echo "$aj1 / $aj2" | bc -l)")
  last_s=$(printf '%.2f s / %.2f s' "$sj1" "$sj2") last_a=$(printf '%.2f s / %.2f s' "$aj1" "$aj2")
done
list() { printf '%s\n' "$@"; }
echo "| job (1 thread per rank, $rounds interleaved rounds) | speedup 2 ranks vs 1: median (min–max) | last round, 1 / 2 ranks |"
echo "|---|---|---|"
echo "| \`sample\` $n images, DDIM-20, batch 4, shipped model: the job | $(list "${job_s[@]}" | spread)× | $last_s |"
echo "| the same, sampling alone (the slowest rank) | $(list "${sampling_s[@]}" | spread)× | |"
echo "| control, no MPI: the two halves of the \`sample\` as two processes at once | $(list "${control[@]}" | spread)× | |"
echo "| \`ablate\` 6 rows (uncached, FORA at 2 and 3, 2 seeds), fresh cells | $(list "${job_a[@]}" | spread)× | $last_a |"
echo
echo "The merge of the 2-rank \`sample\`'s parts on rank 0: $(list "${merge_f[@]}" | awk '{ print 100 * $1 }' | spread %.3f)% of the job's wall time."
echo "Load average (1, 5, 15 min) before: $load_before; after: $(load); $(getconf _NPROCESSORS_ONLN) cores. The ceiling is 2× (FLOPs split"
echo "in half); the job's speedup also pays mpirun's start-up and the merge, and the ablate's timing and report run on rank 0 alone."
