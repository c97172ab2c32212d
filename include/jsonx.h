/* SPDX-License-Identifier: Apache-2.0 */
/* jsonx.h — cJSON with the house's cleanup attribute: `_cleanup_(cjson_deletep) cJSON *o = ...;` is deleted when
 * it goes out of scope (util.h's _cleanup_). The one definition; every module that parses or builds JSON uses it. */
#pragma once
#include <cjson/cJSON.h>

static inline void cjson_deletep(cJSON **j) {
        if (j)
                cJSON_Delete(*j);
}
