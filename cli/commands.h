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
int cmd_record(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_fit(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_ablate(int argc, char **argv);
int cmd_decode(int argc, char **argv);

/* 1 when cmd_search's last exit status 2 meant that --target-speedup is
 * beyond the method's reach (not a usage or input error): for cmd_ablate
 * until it calls eb_search_to_file (pipeline/searching.h), whose met says it. */
int cmd_search_target_missed(void);

#endif
