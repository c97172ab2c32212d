/* SPDX-License-Identifier: Apache-2.0 */
/* sd-daemon.h — the part of libsystemd's sd-daemon.h that mayfly's static build uses; agent/sdshim.c implements it
 * over the stable sd_notify(3) datagram protocol. */
#pragma once
#include <inttypes.h>
#include <sys/types.h>

int sd_notify(int unset_environment, const char *state);
int sd_notifyf(int unset_environment, const char *format, ...) __attribute__((__format__(printf, 2, 3)));
int sd_watchdog_enabled(int unset_environment, uint64_t *usec);
