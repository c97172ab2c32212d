/* SPDX-License-Identifier: Apache-2.0 */
/* fdio.h — reading an fd range in bounded chunks (the digests read files this way). */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Reads [off, off+len) of fd with pread in 64 KiB pieces, handing each to fn (EINTR retried); -EIO on a short
 * file, fn's negative return stops it. */
int pread_each(int fd, off_t off, uint64_t len, int (*fn)(void *ud, const void *buf, size_t n), void *ud);
