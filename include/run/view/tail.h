/* SPDX-License-Identifier: Apache-2.0 */
/* tail.h — the end of a log as a terminal shows it: each '\r' returns to column 0 and what follows overwrites what
 * was there, ANSI escape sequences are removed (erase-in-line and the cursor's column moves are applied), and the
 * end is read back in growing windows until it holds enough lines, so that a '\r' progress bar (tqdm) of hundreds of
 * KiB on one line does not eat the window. Pure: the reading goes through a callback. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define TAIL_FIRST_READ (64u * 1024)  /* the first window read from a log's end; doubled while too few lines */
#define TAIL_MAX_READ (1u << 20)      /* the most read back from one log */
#define TAIL_LINE_CELLS 2000          /* columns kept of one line (a longer one ends in "…") */
#define TAIL_KEEP_BYTES (64u * 1024)  /* the most one rendered tail keeps (its last lines) */

/* What a terminal shows of the last max_lines lines of text (the last len bytes of a log; from_start: nothing
 * before it), one '\n'-terminated line each, appended to out. A line cut by the window's start is dropped, unless
 * it is the only one. At most max_bytes are appended: the last lines that fit (the last line alone is cut to its
 * end). *ret_lines: the lines appended; 0 or -errno (-E2BIG: out's cap). */
int tail_render(const char *text, size_t len, bool from_start, size_t max_bytes, size_t max_lines, struct buf *out,
                size_t *ret_lines);

/* The last up to `max` bytes of a log into *ret (malloc'd, NUL-terminated), *ret_whole when that is all of it.
 * -MF_ENOTFOUND (or any -errno) when it cannot be read. */
typedef int (*tail_read_fn)(void *ud, size_t max, char **ret, size_t *ret_len, bool *ret_whole);

/* tail_render of a log's end read through read_end: TAIL_FIRST_READ bytes, then twice as many while the window
 * holds fewer than max_lines whole lines, up to TAIL_MAX_READ. At most TAIL_KEEP_BYTES appended to out;
 * *ret_lines as above, *ret_cut when the log has more before the lines shown. read_end's error is returned. */
int tail_read(tail_read_fn read_end, void *ud, size_t max_lines, struct buf *out, size_t *ret_lines, bool *ret_cut);
