#!/bin/sh
# tests/mpi/imagenet.sh — make test-mpi, the ImageNet judge (docs/metrics.md "ImageNet"):
# `features` and `eval --inception` under mpirun -np 2 and 3 give one process's datasets and JSON
# byte for byte (5 samples in two files and 4 reference images, batches of 2: a batch spans the two
# files, the ranks get uneven shares and, on 3 ranks, one gets no reference image); the reference
# cache written under 2 ranks is hit under 3; a rank whose samples are missing fails the job
# naming it. $EBCACHE_BIN is the binary, $MAKE_INPUTS tests/mpi/make_inputs.c built.
. "$(dirname "$0")/common.sh"
M=$(realpath "${MAKE_INPUTS:-build/opt/tests/mpi/make_inputs}")

"$M" "$T" || { echo "test-mpi imagenet: FAIL: make_inputs" >&2; exit 1; }
W=$T/inception.safetensors
S=$T/s1.npz,$T/s2.npz
F="features --inception $W --images $S --batch 2"
EV="eval --inception $W --samples $S --reference $T/ref.npz --batch 2 --json"

# --- features: the datasets of one process
"$E" $F --output "$T/f1.h5" 2>"$T/log" || fail "features, one process: $(cat "$T/log")"
for n in 2 3; do
    if ! $MPIRUN -np $n "$E" $F --output "$T/f$n.h5" 2>"$T/log"; then
        fail "features on $n ranks: $(cat "$T/log")"
    elif same /pool "$T/f1.h5" "$T/f$n.h5" && same /spatial "$T/f1.h5" "$T/f$n.h5" &&
        same /logits "$T/f1.h5" "$T/f$n.h5" && clean; then
        ok "features on $n ranks: pool, spatial and logits of one process"
    else
        fail "features on $n ranks differ from one process (or a temporary file was left)"
    fi
done

# --- eval: the JSON of one process, without and with the reference cache
"$E" $EV >"$T/e1.json" 2>"$T/log" || fail "eval, one process: $(cat "$T/log")"
for n in 2 3; do
    if $MPIRUN -np $n "$E" $EV >"$T/e$n.json" 2>"$T/log" && cmp -s "$T/e1.json" "$T/e$n.json"; then
        ok "eval on $n ranks: the JSON of one process"
    else
        fail "eval on $n ranks: $(cat "$T/log") $(diff "$T/e1.json" "$T/e$n.json")"
    fi
done
if $MPIRUN -np 2 "$E" $EV --cache "$T/c.h5" >"$T/c2.json" 2>"$T/log" && [ -e "$T/c.h5" ] &&
    $MPIRUN -np 3 "$E" $EV --cache "$T/c.h5" >"$T/c3.json" 2>>"$T/log" &&
    cmp -s "$T/e1.json" "$T/c2.json" && cmp -s "$T/e1.json" "$T/c3.json" && clean; then
    ok "eval with the cache written on 2 ranks and read on 3: the JSON of one process"
else
    fail "eval with the cache: $(cat "$T/log")"
fi

# --- rank 1 without its samples (its own working folder): the job fails naming rank 1
mkdir "$T/a" "$T/b" && cp "$T/s1.npz" "$T/s2.npz" "$T/ref.npz" "$T/a/" && cp "$T/ref.npz" "$T/b/"
$MPIRUN -np 2 sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then cd "$0/b"; else cd "$0/a"; fi; exec "$@"' "$T" \
    "$E" eval --inception "$W" --samples s1.npz,s2.npz --reference ref.npz --json >"$T/m.json" 2>"$T/log"
rc=$?
rm -r "$T/a" "$T/b"
if [ $rc = 0 ] || [ -s "$T/m.json" ] || ! grep -q "ebcache eval: rank 1: .*s1.npz" "$T/log"; then
    fail "eval with rank 1's samples missing: exit $rc, $(cat "$T/log")"
else
    ok "eval with rank 1's samples missing: '$(grep -o 'rank 1: .*' "$T/log" | head -1)', exit $rc, no JSON"
fi

[ $failures = 0 ] || { echo "test-mpi imagenet: $failures failed" >&2; exit 1; }
echo "test-mpi imagenet: all passed"
