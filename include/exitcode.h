/* SPDX-License-Identifier: Apache-2.0 */
/* exitcode.h — the process exit codes (documented in README and `mayfly --help`); main and the commands map
 * negative errno returns to these. */
#pragma once

enum {
        EXIT_OK = 0,
        EXIT_FAIL = 1,        /* the operation failed (AWS error, transfer failure, bad answer) */
        EXIT_USAGE = 2,       /* bad command line or input file */
        EXIT_NOTFOUND = 3,    /* the source object, prefix or file does not exist */
        EXIT_AUTH = 4,        /* no credentials, or credentials refused */
        EXIT_NOSPACE = 5,     /* local disk full */
        EXIT_RUN_FAILED = 6,  /* `mayfly run` finished and did its exit action, outcome not `succeeded` */
};
