# eps.gp — ‖ε‖ along the chain over ‖ε‖ on training-like inputs q(x_t | x0) at the same
# step, per step: the ratio ε-scaling (Ning et al.) and EB-Cache's noise scaling fit.
# Lines: mean over the samples; bands: their min..max, for the recorded (cached) run
# and, with a schedule, the uncached reference chain. Without /eps/norm_q the mean ‖ε‖
# of the run (and the uncached reference) is shown instead.
#
# `ebcache plot` sets dat, out, name, has_q, has_ref. eps.dat columns:
#   1 step  2 t  3 mean ratio  4 min ratio  5 max ratio  6 mean ‖ε‖  7 reference mean ‖ε‖
#   8 mean ‖ε_q‖  9 reference mean ratio  10 reference min  11 reference max
set terminal pngcairo size 900,620 enhanced font ",10"
set output out
set title name noenhanced
set xlabel "sampling step k (0 = noisiest)"
load dat."t_axis.gp"
set grid
set key top left
f = dat."eps.dat"
run = has_ref ? "cached" : "run"
if (has_q) {
    set ylabel "||{/Symbol e}|| / ||{/Symbol e}_q||"
    cmd = "plot f u 1:4:5 w filledcurves lc rgb '#9ecae1' fs transparent solid 0.5 t 'min..max, ".run."'"
    if (has_ref) { cmd = cmd.", f u 1:10:11 w filledcurves lc rgb '#fdae6b' fs transparent solid 0.4 t 'min..max, uncached'" }
    cmd = cmd.", f u 1:3 w lp pt 7 ps 0.5 lw 2 lc rgb '#08519c' t 'mean, ".run."'"
    if (has_ref) { cmd = cmd.", f u 1:9 w l dt 2 lw 2 lc rgb '#d94801' t 'mean, uncached'" }
    cmd = cmd.", 1 w l lc rgb 'black' dt 3 t 'no bias'"
    eval cmd
} else {
    set ylabel "||{/Symbol e}||"
    cmd = "plot f u 1:6 w lp pt 7 ps 0.5 lw 2 lc rgb '#08519c' t 'mean, ".run."'"
    if (has_ref) { cmd = cmd.", f u 1:7 w l dt 2 lw 2 lc rgb '#d94801' t 'mean, uncached'" }
    eval cmd
}
