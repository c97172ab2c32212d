/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_profile.c — the laptop's ~/.aws/config and credentials (INI, through libinih) and a credential_process's
 * answer (JSON) and command line (shell words). Never a crash; a secret never in an error message. The input is split
 * at its first NUL byte: an INI text, then a JSON answer (also taken as a command line). */
#include <assert.h>
#include <stdlib.h>

#include "aws/creds.h"
#include "aws/credproc.h"
#include "aws/profile.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *p = (const char *)data;
        const char *z = memchr(p, 0, size);
        size_t ilen = z ? (size_t)(z - p) : size;
        char *ini = strndup(p, ilen);
        const char *json = z ? z + 1 : "";
        size_t jlen = z ? size - ilen - 1 : 0;
        static struct profile_set s;
        char err[512] = "";
        for (int cred = 0; cred < 2 && ini; cred++) {
                memset(&s, 0, sizeof s);
                if (profile_parse(&s, ini, cred, err, sizeof err) < 0)
                        assert(err[0]);
                for (size_t i = 0; i < s.n; i++)
                        profile_has_credentials(&s.p[i]);
                profile_set_free(&s);
        }
        free(ini);
        struct aws_creds c = { 0 };
        err[0] = 0;
        if (credproc_parse(json, jlen, &c, err, sizeof err) == 0) {
                assert(c.access_key && c.secret_key);
                assert(!strstr(err, c.secret_key) || !*c.secret_key);
                aws_creds_clear(&c);
        } else
                assert(err[0]);
        char *cmd = strndup(json, jlen);
        char **argv = NULL;
        if (cmd && credproc_split(cmd, &argv) == 0)
                credproc_argv_free(argv);
        free(cmd);
        return 0;
}
