/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_manifest.c — an input's manifest (manifest.h), whatever its bytes (a disk that returned garbage): never a
 * crash; an error always says which line; what was read formats and reads back to the same entries. */
#include <assert.h>
#include <stdlib.h>

#include "run/proc/manifest.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct manifest m, again;
        if (manifest_init(&m, "s", "p") < 0)
                return 0;
        char err[200] = "";
        if (manifest_parse(&m, (const char *)data, size, err, sizeof err) < 0) {
                assert(!strncmp(err, "line ", 5));
                manifest_free(&m);
                return 0;
        }
        for (size_t i = 0; i < m.n; i++)
                assert(manifest_find(&m, m.v[i].key));
        char *text = NULL;
        size_t len = 0;
        if (manifest_format(&m, &text, &len) == 0 && manifest_init(&again, "s", "p") == 0) {
                assert(manifest_parse(&again, text, len, err, sizeof err) == 0);
                assert(again.n == m.n && again.complete == m.complete);
                manifest_free(&again);
        }
        free(text);
        manifest_free(&m);
        return 0;
}
