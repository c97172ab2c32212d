/* SPDX-License-Identifier: Apache-2.0 */
/* run.h — `mayfly run` and `mayfly failsafe`: the lifecycle (lifecycle.h) driven for one job, persisted so that a
 * restarted agent resumes. */
#pragma once
#include <stdbool.h>

/* Runs the job at job_path to its end (or until the agent is stopped; the next call resumes). failsafe: what
 * mayfly-failsafe.service runs once systemd gave up restarting the agent: the run ends as an error (unless it had
 * ended already), ships what exists, and does its exit action. Returns the process exit code (exitcode.h). */
int run_main(const char *job_path, bool failsafe);
