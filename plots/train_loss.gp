# train_loss.gp — the default model's training log (data/default-run/train_log.csv):
# loss, its MSE (ε) and VB (learned variance) terms per logged window, log scale.
# make plots sets: dat (the CSV), out (PNG path).
set terminal pngcairo size 900,500 enhanced font ",10"
set output out
set datafile separator ","
set title "default model training (Fashion-MNIST, batch 128, AdamW 3e-4)"
set xlabel "step"
set ylabel "loss (mean over a 50-step window)"
set logscale y
set key top right
set grid
plot dat u 1:2 every ::1 w l lw 2 t "loss", dat u 1:3 every ::1 w l lw 1 t "MSE (ε)", \
     dat u 1:4 every ::1 w l lw 1 t "VB (variance)"
