# tests/mpi/common.sh — what the test-mpi scripts share (sourced): the binary, the models, a temporary
# folder removed at exit, mpirun's flags and environment, and the checks. $EBCACHE_BIN is the binary.
set -u
E=$(realpath "${EBCACHE_BIN:-build/opt/ebcache}")
ROOT=$(pwd)
VAE=$ROOT/tests/golden/vae_small/ldm
TINY=$ROOT/tests/golden/models/tiny_sigma.safetensors
MODEL=$ROOT/data/dit_fmnist.safetensors
T=$(mktemp -d /tmp/ebcache_mpi_XXXXXX)
trap 'rm -rf "$T"' EXIT
# as root (CI) mpirun needs --allow-run-as-root; 3 ranks on 2 cores need --oversubscribe
MPIRUN="mpirun --allow-run-as-root --oversubscribe"
# shared memory between the ranks, without the single-copy mechanism some containers forbid
export OMP_NUM_THREADS=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
failures=0
start=$(date +%s)
ok() { echo "test-mpi: ok ($(( $(date +%s) - start )) s): $*"; }

fail() { echo "test-mpi: FAIL: $*" >&2; failures=$((failures + 1)); }

# same DATASET A B: the dataset's bytes (h5dump's raw little-endian dump) are equal
same() {
    h5dump -d "$1" -b LE -o "$T/a.bin" "$2" >/dev/null 2>&1 && h5dump -d "$1" -b LE -o "$T/b.bin" "$3" >/dev/null 2>&1 &&
        cmp -s "$T/a.bin" "$T/b.bin"
}
ranks_attr() { h5dump -a /ranks "$1" 2>/dev/null | sed -n 's/.*(0): \([0-9]*\).*/\1/p'; }
# leftovers: no part and no temporary file beside the outputs
clean() { ! ls "$T" | grep -q '\.part-\|\.tmp\.'; }

# on_two_ranks CMD...: CMD under mpirun -np 2 (600 s at most), rank 0 in $T/a and rank 1 in $T/b, which the
# caller makes (a relative input that one rank lacks), rank 1 writing its pid to $T/rank1.pid
on_two_ranks() {
    timeout 600 $MPIRUN -np 2 sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then cd "$0/b" && echo $$ >"$0/rank1.pid"
                                     else cd "$0/a"; fi; exec "$@"' "$T" "$@"
}

# kill_rank1 CONDITION CMD...: runs the job CMD in the background (its rank 1 writes its pid to $T/rank1.pid),
# kills rank 1 with SIGKILL once the shell test CONDITION holds (or after 60 s); rc gets the job's status
kill_rank1() {
    cond=$1
    shift
    rm -f "$T/rank1.pid"
    "$@" &
    job=$!
    for i in $(seq 600); do [ -s "$T/rank1.pid" ] && eval "$cond" 2>/dev/null && break; sleep 0.1; done
    kill -9 "$(cat "$T/rank1.pid")" 2>/dev/null
    wait $job
    rc=$?
    rm -f "$T/rank1.pid"
}

# expect_rank1_failure WHAT OUTPUT PATTERN: the job just run (status $rc, stderr in $T/log) failed with a
# message matching PATTERN ("ebcache CMD: rank 1: ..."), wrote no OUTPUT and left no part or temporary file
expect_rank1_failure() {
    if [ $rc = 0 ] || [ -e "$2" ] || ! clean || ! grep -q "$3" "$T/log"; then
        fail "$1: exit $rc, $(ls "$T") $(cat "$T/log")"
    else
        ok "$1: '$(grep -o 'rank 1: .*' "$T/log" | head -1)', exit $rc, no output"
    fi
}

# the end of a script: its verdict
finish() {
    [ $failures = 0 ] || { echo "test-mpi: $failures failed" >&2; exit 1; }
    echo "test-mpi: all passed"
}
