/* pipeline/replay.h — eb-cache's calibration runner (search/search.h
 * eb_search_runner): the recorded run (its model, checked by SHA-256, sampler,
 * guidance, noise and labels, from the recording's attributes) replayed as
 * one chain, each step evaluated in the three candidate states. */
#ifndef EB_PIPELINE_REPLAY_H
#define EB_PIPELINE_REPLAY_H

#include "search/search.h"

typedef struct eb_replay eb_replay;

/* Opens the replay of recording rec (read by eb_rec_data_read) on `threads`
 * threads (0: all cores); EB_EINPUT naming the file when it cannot be
 * replayed (recorded from data, the model changed, attributes missing).
 * progress: a line on stderr when it is a terminal. runner gets the callback
 * and its context. */
eb_status eb_replay_open(eb_replay **out, const eb_rec_data *rec, int threads, int progress, eb_search_runner *runner);
void eb_replay_free(eb_replay *r);

#endif
