/* commands.h — the subcommands of bin/ebcache. Each takes the arguments after
 * its name (argv[0] is the command name) and returns the process exit status:
 * 0 success, 1 runtime failure, 2 usage or input error. */
#ifndef EB_COMMANDS_H
#define EB_COMMANDS_H

int cmd_forward(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_grid(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train_classifier(int argc, char **argv);
int cmd_schedule(int argc, char **argv);
/* `schedule show` (argv[0] = "show"). */
int cmd_schedule_show(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_fit(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_ablate(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_features(int argc, char **argv);

#endif
