/* SPDX-License-Identifier: Apache-2.0 */
/* sd-journal.h — the part of libsystemd's sd-journal.h that mayfly's static build uses; agent/sdshim.c implements it
 * over journald's native protocol (systemd.journal-fields(7), "Native Journal Protocol"). */
#pragma once
#include <stdarg.h>
#include <sys/types.h>
#include <syslog.h>

/* "FIELD=format", its arguments, ..., NULL; each format is printf-style. 0 or -errno. */
int sd_journal_send(const char *format, ...) __attribute__((__format__(printf, 1, 0), __sentinel__));
