/* SPDX-License-Identifier: Apache-2.0 */
/* phases.h — the phases' actions (lifecycle.h: A_FETCH, A_PREPARE, A_START, A_STOP, A_SHIP); each answers with
 * the event it ended with. Internal to agent/run/drive/. */
#pragma once
#include "run/drive/runctx.h"

int act_fetch(struct run *R);
int act_prepare(struct run *R);
/* The next experiment of a run on one instance: started (or resumed), supervised to its end. */
int act_start(struct run *R);
/* Starts experiment i (resume: again, after an interruption); EV_FAILED when it cannot start, else -1. */
int start_experiment(struct run *R, size_t i, bool resume);
/* Supervises the running experiment until it ends (EV_EXP_ENDED) or the run must decide. */
int supervise(struct run *R);
int act_stop(struct run *R);
/* What the final upload (and an experiment's commit) ships. */
struct ship_plan plan_of(struct run *R);
/* Experiment i's results as this instance holds them (plan_of) in S3 now, on a worker (the loop feeds the watchdog):
 * 0, or -EIO (each failure logged). */
int ship_held(struct run *R, size_t i);
/* The shipping starts: the watcher and the live shipping stop. false: there is nowhere to ship to. */
bool ship_begin(struct run *R);
int act_ship(struct run *R);
