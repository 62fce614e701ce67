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

# the end of a script: its verdict
finish() {
    [ $failures = 0 ] || { echo "test-mpi: $failures failed" >&2; exit 1; }
    echo "test-mpi: all passed"
}
