#!/bin/sh
# tests/mpi/run.sh — make test-mpi: ebcache under mpirun (docs/distributed.md). decode (HDF5 and .npz)
# and sample on 2 and 3 ranks give the datasets of one process byte for byte; a rank whose part
# cannot be written fails the job naming it, and a killed rank stops it, leaving no output, no part
# and no temporary file; the rerun then succeeds. $EBCACHE_BIN is the binary (build/opt/ebcache).
. "$(dirname "$0")/common.sh"

# --- decode: latents of the tiny 4x8x8 model through the small VAE, 7 images in batches of 2
"$E" sample --model "$TINY" --n 7 --steps 4 --batch 2 --output "$T/z.h5" 2>"$T/log" || fail "sample for decode: $(cat "$T/log")"
D="decode --vae $VAE --samples $T/z.h5 --batch 2"
# 3 ranks of --batch 4: two batches, rank 2 gets none and writes an empty part
D4="decode --vae $VAE --samples $T/z.h5 --batch 4"
"$E" $D4 --output "$T/e1.npz" 2>"$T/log" && "$E" $D4 --output "$T/e1.h5" 2>>"$T/log" ||
    fail "decode --batch 4, one process: $(cat "$T/log")"
if $MPIRUN -np 3 "$E" $D4 --output "$T/e3.npz" 2>"$T/log" && $MPIRUN -np 3 "$E" $D4 --output "$T/e3.h5" 2>>"$T/log" &&
    cmp -s "$T/e1.npz" "$T/e3.npz" && same /images "$T/e1.h5" "$T/e3.h5" && clean; then
    ok "decode on 3 ranks with a rank left without images"
else
    fail "decode on 3 ranks with a rank left without images: $(cat "$T/log")"
fi
"$E" $D --output "$T/d1.h5" 2>"$T/log" && "$E" $D --output "$T/d1.npz" 2>>"$T/log" || fail "decode, one process: $(cat "$T/log")"
for n in 2 3; do
    if ! $MPIRUN -np $n "$E" $D --output "$T/d$n.h5" 2>"$T/log" || ! $MPIRUN -np $n "$E" $D --output "$T/d$n.npz" 2>>"$T/log"; then
        fail "decode on $n ranks: $(cat "$T/log")"
        continue
    fi
    if same /images "$T/d1.h5" "$T/d$n.h5" && same /y "$T/d1.h5" "$T/d$n.h5" && cmp -s "$T/d1.npz" "$T/d$n.npz" &&
        [ "$(ranks_attr "$T/d$n.h5")" = $n ] && clean; then
        ok "decode on $n ranks: the images of one process (h5 and npz), ranks = $n, no part left"
    else
        fail "decode on $n ranks differs from one process (or ranks attribute / leftovers)"
    fi
done

# --- a rank that cannot write its part: every rank fails naming it, nothing is left; the rerun succeeds
mkdir "$T/f.h5.part-1-of-2"
if $MPIRUN -np 2 "$E" $D --output "$T/f.h5" 2>"$T/log"; then
    fail "a rank that cannot write its part: the job succeeded"
elif ! grep -q "ebcache decode: rank 1: .*f.h5.part-1-of-2" "$T/log" || [ -e "$T/f.h5" ]; then
    fail "a rank that cannot write its part: no 'rank 1: ...' message or an output was left: $(cat "$T/log")"
else
    message=$(grep -o 'rank 1: .*' "$T/log" | head -1)
    rmdir "$T/f.h5.part-1-of-2"
    if clean && $MPIRUN -np 2 "$E" $D --output "$T/f.h5" 2>"$T/log" && same /images "$T/d1.h5" "$T/f.h5"; then
        ok "a failing rank: '$message', non-zero exit, no output; the rerun succeeds"
    else
        fail "rerun after a failing rank: $(cat "$T/log")"
    fi
fi

# --- a killed rank: rank 1 blocks reading its latents (a FIFO under the same relative name) and is
# killed once rank 0 has written its .npz part; mpirun stops rank 0, whose SIGTERM handler removes it
mkdir "$T/a" "$T/b" && cp "$T/z.h5" "$T/a/z.h5" && mkfifo "$T/b/z.h5"
kill_rank1 '[ -e "$T/k.npz.part-0-of-2" ]' on_two_ranks "$E" decode --vae "$VAE" --samples z.h5 --batch 2 \
    --output "$T/k.npz" 2>"$T/log"
rm -f "$T/b/z.h5"
rm -r "$T/a" "$T/b"
if [ $rc = 0 ] || [ -e "$T/k.npz" ] || ! clean; then
    fail "a killed rank: exit $rc, or an output / part / temporary file was left: $(ls "$T") $(cat "$T/log")"
elif $MPIRUN -np 2 "$E" $D --output "$T/k.npz" 2>"$T/log" && cmp -s "$T/d1.npz" "$T/k.npz"; then
    ok "a killed rank: exit $rc, nothing left behind; the rerun succeeds"
else
    fail "rerun after a killed rank: $(cat "$T/log")"
fi

# --- sample: the shipped model, 7 samples in batches of 2, uncached and with a FORA table (whose cost
# attributes must add up to one process's too)
"$E" schedule fora --interval 2 --steps 5 --output "$T/fora.schedule" 2>"$T/log" || fail "schedule: $(cat "$T/log")"
S="sample --model $MODEL --n 7 --steps 5 --batch 2"
attrs() { h5dump -m %.17g -a /flop_fraction -a /steps_skipped -a /cache_bytes "$1" 2>/dev/null | grep '(0)'; }
"$E" $S --output "$T/s1.h5" 2>"$T/log" && "$E" $S --schedule "$T/fora.schedule" --output "$T/c1.h5" 2>>"$T/log" ||
    fail "sample, one process: $(cat "$T/log")"
for n in 2 3; do
    if ! $MPIRUN -np $n "$E" $S --output "$T/s$n.h5" 2>"$T/log" ||
        ! $MPIRUN -np $n "$E" $S --schedule "$T/fora.schedule" --output "$T/c$n.h5" 2>>"$T/log"; then
        fail "sample on $n ranks: $(cat "$T/log")"
    elif same /samples "$T/s1.h5" "$T/s$n.h5" && same /y "$T/s1.h5" "$T/s$n.h5" && same /samples "$T/c1.h5" "$T/c$n.h5" &&
        [ -n "$(attrs "$T/c1.h5")" ] && [ "$(attrs "$T/c1.h5")" = "$(attrs "$T/c$n.h5")" ] &&
        [ "$(ranks_attr "$T/s$n.h5")" = $n ] && clean; then
        ok "sample on $n ranks: the samples of one process, uncached and cached (same cost attributes)"
    else
        fail "sample on $n ranks differs from one process (or its attributes / leftovers)"
    fi
done
# 3 ranks of --batch 4: two batches, rank 2 samples none
"$E" $S --batch 4 --output "$T/s4.h5" 2>"$T/log" && $MPIRUN -np 3 "$E" $S --batch 4 --output "$T/s4r.h5" 2>>"$T/log" &&
    same /samples "$T/s4.h5" "$T/s4r.h5" && clean && ok "sample on 3 ranks with a rank left without samples" ||
    fail "sample on 3 ranks with a rank left without samples: $(cat "$T/log")"

# --- sample with the model missing on rank 1 only (its own working folder): the job fails naming rank 1
mkdir "$T/a" "$T/b" && cp "$MODEL" "$T/a/model.safetensors"
on_two_ranks "$E" sample --model model.safetensors --n 7 --steps 5 --batch 2 --output "$T/m.h5" 2>"$T/log"
rc=$?
rm -r "$T/a" "$T/b" "$T/rank1.pid"
expect_rank1_failure "sample with rank 1's model missing" "$T/m.h5" "ebcache sample: rank 1: "

# --- a command that is not distributed yet is refused rather than run whole on every rank
if $MPIRUN -np 2 "$E" fit "$T/none.h5" --output "$T/fit.h5" 2>"$T/log"; then
    fail "fit under mpirun ran"
elif grep -q "ebcache fit: not distributed yet" "$T/log" && [ ! -e "$T/fit.h5" ]; then
    ok "fit under mpirun: refused (not distributed yet)"
else
    fail "fit under mpirun: $(cat "$T/log")"
fi

finish
