/* SPDX-License-Identifier: Apache-2.0 */
/* log.h — the agent's one-line log: stderr (with <N> priority prefixes when journald reads it) and a copy in
 * a file that is shipped with the run's logs. Secrets are never passed here. */
#pragma once
#include <syslog.h>

void log_open_file(const char *path);
void log_close_file(void);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
/* "mayfly: <msg>" on stderr, one line (LOG_ERR). */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
