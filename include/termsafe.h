/* SPDX-License-Identifier: Apache-2.0 */
/* termsafe.h — text read from S3 made safe for a terminal. Whoever can write under a run's prefix writes what
 * `mayfly status`, `ls` and `logs` print: an escape sequence there could forge a line ("succeeded"), write the
 * clipboard (OSC 52), retitle the window or query the terminal. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* Pure: in (n bytes) into out (at least n bytes): every escape sequence (ESC ... and the C1 controls, U+0080 to
 * U+009F) and every other control character removed; with log_mode, newline, tab, carriage return and SGR colour
 * sequences (ESC [ digits ; m) are kept, as `less -R` shows them. Bytes that are not valid UTF-8 are dropped. Returns the length written (out is not
 * NUL-terminated past it unless there is room: out[len] = 0 when len < cap). */
size_t term_safe(const char *in, size_t n, bool log_mode, char *out);
/* A NUL-terminated string made safe (log_mode false), in place. Returns s. */
char *term_safe_str(char *s);
/* Every string in the tree made safe (log_mode false), in place: for what status and ls print. */
void term_safe_json(struct cJSON *o);
