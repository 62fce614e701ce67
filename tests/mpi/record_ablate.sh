#!/bin/sh
# tests/mpi/record_ablate.sh — make test-mpi: record and ablate under mpirun (docs/distributed.md).
# record on 2 and 3 ranks (cached with feature dumps; from data at a start step; a rank without a batch)
# writes the datasets of one process byte for byte (h5diff clean; the attributes differ only in ranks and
# the measured wall_seconds); ablate on 2 and 3 ranks writes one process's CSV but for the measured timing
# columns. Faults: rank 1 missing its data fails record naming rank 1 with nothing written; a record rank
# killed mid-run leaves no output or temporary file; rank 1 missing the classifier fails ablate naming
# rank 1 with no report, and a killed ablate rank stops the job; each rerun computes only the missing
# cells and gives one process's CSV.
. "$(dirname "$0")/common.sh"

# every job under a time limit: a collective that one rank never reaches must fail the test, not hang it
RUN="timeout 600 $MPIRUN"
attrs_but_measured() { h5dump -A "$1" | sed -e 1d -e '/^   ATTRIBUTE "\(ranks\|wall_seconds\)" {/,/^   }/d'; }
# same_recording A B: equal datasets and equal attributes but ranks and wall_seconds
same_recording() {
    [ -z "$(h5diff "$1" "$2" 2>&1 | grep -v 'attribute: <\(ranks\|wall_seconds\) of </>>\|^1 differences found$')" ] &&
        [ "$(attrs_but_measured "$1")" = "$(attrs_but_measured "$2")" ]
}

# --- record: a FORA table, features dumped; data from step 2; 3 samples in batches of 2 on 3 ranks
"$E" schedule fora --interval 2 --steps 6 --output "$T/fora.schedule" 2>"$T/log" || fail "schedule: $(cat "$T/log")"
"$E" sample --model "$MODEL" --n 7 --steps 4 --batch 7 --output "$T/x0src.h5" 2>"$T/log" &&
    h5copy -i "$T/x0src.h5" -o "$T/x0.h5" -s samples -d x0 && h5copy -i "$T/x0src.h5" -o "$T/x0.h5" -s y -d y ||
    fail "data for record: $(cat "$T/log")"
for case in "cached|--n 7 --batch 2 --schedule $T/fora.schedule --dump-features 1,3:0,1" \
            "data|--n 7 --batch 3 --data $T/x0.h5 --start-step 2" "no-batch|--n 3 --batch 2"; do
    name=${case%%|*} R="record --model $MODEL --steps 6 ${case#*|}"
    "$E" $R --output "$T/r1-$name.h5" 2>"$T/log" || { fail "record $name, one process: $(cat "$T/log")"; continue; }
    for n in 2 3; do
        if ! $RUN -np $n "$E" $R --output "$T/r$n-$name.h5" 2>"$T/log"; then
            fail "record $name on $n ranks: $(cat "$T/log")"
        elif same_recording "$T/r1-$name.h5" "$T/r$n-$name.h5" && [ "$(ranks_attr "$T/r$n-$name.h5")" = $n ] && clean; then
            ok "record $name on $n ranks: one process's datasets and attributes (but ranks = $n, wall_seconds)"
        else
            fail "record $name on $n ranks differs from one process: $(h5diff "$T/r1-$name.h5" "$T/r$n-$name.h5" | head -5)"
        fi
    done
done

# --- record with rank 1's data missing (its own working folder): the job fails naming rank 1, nothing written
mkdir "$T/a" "$T/b" && cp "$T/x0.h5" "$T/a/x0.h5"
on_two_ranks "$E" record --model "$MODEL" --steps 6 --n 4 --batch 2 --data x0.h5 --start-step 2 --output "$T/m.h5" \
    2>"$T/log"
rc=$?
rm -r "$T/a" "$T/b" "$T/rank1.pid"
expect_rank1_failure "record with rank 1's data missing" "$T/m.h5" "ebcache record: rank 1: .*x0.h5"

# --- a record rank killed: rank 1 blocks opening its data (a FIFO) while rank 0, which writes the file, waits
# for it; killed, it makes mpirun stop rank 0, whose handler removes its temporary file
mkdir "$T/a" "$T/b" && cp "$T/x0.h5" "$T/a/x0.h5" && mkfifo "$T/b/x0.h5"
kill_rank1 'ls "$T" | grep -q "^k\.h5\.tmp\."' on_two_ranks "$E" record --model "$MODEL" --steps 6 --n 4 --batch 2 \
    --data x0.h5 --start-step 2 --output "$T/k.h5" 2>"$T/log"
rm -f "$T/b/x0.h5"
rm -r "$T/a" "$T/b"
if [ $rc = 0 ] || [ -e "$T/k.h5" ] || ! clean; then
    fail "a killed record rank: exit $rc, or an output / temporary file was left: $(ls "$T") $(cat "$T/log")"
else
    ok "a killed record rank: exit $rc, nothing left behind"
fi

# --- ablate: a small grid (tests/mpi/grid.spec: uncached, FORA at intervals 2 and 3; 2 seeds: 6 rows)
CLASSIFIER=$ROOT/data/classifier.safetensors
A="ablate $ROOT/tests/mpi/grid.spec --model $MODEL --threads 1 --classifier $CLASSIFIER"
# the CSV without the measured columns (8 wall_s, 9 measured_speedup, 10 cpu_speedup, 11 load)
table() { cut -d, -f1-7,12- "$1"; }
reused() { sed -n 's/^ablate: \([0-9]*\) of \([0-9]*\) rows reused.*/\1 of \2/p' "$1"; }
"$E" $A --cells "$T/c1" --results "$T/res1" 2>"$T/log" || fail "ablate, one process: $(cat "$T/log")"
table "$T/res1/t.csv" >"$T/t1.csv"
for n in 2 3; do
    if ! $RUN -np $n "$E" $A --cells "$T/c$n" --results "$T/res$n" 2>"$T/log"; then
        fail "ablate on $n ranks: $(cat "$T/log")"
    elif table "$T/res$n/t.csv" | cmp -s - "$T/t1.csv" && [ "$(reused "$T/log")" = "0 of 6" ] &&
        grep -q "ablate rank 1 " "$T/log" && [ "$(grep -c 'calibration recording' "$T/log")" = 1 ]; then
        ok "ablate on $n ranks: one process's CSV (timing columns aside), every cell computed once"
    else
        fail "ablate on $n ranks differs from one process: $(table "$T/res$n/t.csv" | diff - "$T/t1.csv" | head -5) $(cat "$T/log")"
    fi
done
# a rerun on finished cells computes nothing and gives the same table
if $RUN -np 2 "$E" $A --cells "$T/c2" --results "$T/res2" 2>"$T/log" && [ "$(reused "$T/log")" = "6 of 6" ] &&
    table "$T/res2/t.csv" | cmp -s - "$T/t1.csv" && ! grep -q "ablate rank [01] \[" "$T/log"; then
    ok "ablate rerun on 2 ranks: 6 of 6 rows reused, nothing computed"
else
    fail "ablate rerun on 2 ranks: $(cat "$T/log")"
fi

# --- ablate with rank 1's classifier missing: it fails its first evaluation; the job fails naming it,
# writes no report, and keeps the finished cells: the rerun computes only the rows left
mkdir "$T/a" "$T/b" && cp "$CLASSIFIER" "$T/a/classifier.safetensors"
on_two_ranks "$E" ablate "$ROOT/tests/mpi/grid.spec" --model "$MODEL" --threads 1 --classifier classifier.safetensors \
    --cells "$T/cf" --results "$T/resf" 2>"$T/log"
rc=$?
rm -r "$T/a" "$T/b" "$T/rank1.pid"
if [ $rc = 0 ] || [ -e "$T/resf/t.csv" ] || ! grep -q "ebcache ablate: rank 1: .*classifier" "$T/log"; then
    fail "ablate with rank 1's classifier missing: exit $rc: $(cat "$T/log")"
elif $RUN -np 2 "$E" $A --cells "$T/cf" --results "$T/resf" 2>"$T/log" && table "$T/resf/t.csv" | cmp -s - "$T/t1.csv" &&
    [ "$(reused "$T/log")" = "3 of 6" ] && ! grep -q "calibration recording\|search fora\|sample uncached" "$T/log"; then
    ok "ablate with rank 1's classifier missing: exit $rc, no report; the rerun reused 3 of 6 rows, computed only the rest"
else
    fail "ablate rerun after a failing rank: $(cat "$T/log")"
fi

# --- an ablate rank killed after its first row: mpirun stops the job, no report; the rerun completes
mkdir "$T/a" "$T/b"
kill_rank1 'grep -q "ablate rank 1 \[1/3\]" "$T/log"' on_two_ranks "$E" $A --cells "$T/ck" --results "$T/resk" 2>"$T/log"
rm -r "$T/a" "$T/b"
if [ $rc = 0 ] || [ -e "$T/resk/t.csv" ]; then
    fail "a killed ablate rank: exit $rc, or a report was written: $(cat "$T/log")"
elif $RUN -np 2 "$E" $A --cells "$T/ck" --results "$T/resk" 2>"$T/log" && table "$T/resk/t.csv" | cmp -s - "$T/t1.csv" &&
    [ -z "$(find "$T/ck" -name '*.tmp.*')" ] && ! grep -q "calibration recording" "$T/log"; then
    ok "a killed ablate rank: exit $rc, no report; the rerun ($(reused "$T/log") rows reused) gives one process's CSV"
else
    fail "ablate rerun after a killed rank: $(cat "$T/log")"
fi

finish
