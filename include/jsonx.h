/* SPDX-License-Identifier: Apache-2.0 */
/* jsonx.h — cJSON with the house's cleanup attribute: `_cleanup_(cjson_deletep) cJSON *o = ...;` is deleted when
 * it goes out of scope (util.h's _cleanup_). The one definition; every module that parses or builds JSON uses it. */
#pragma once
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

static inline void cjson_deletep(cJSON **j) {
        if (j)
                cJSON_Delete(*j);
}

/* A JSON number as an integer in [min, max]; dflt when it is absent, not a number, not whole or out of range. What
 * comes from outside (S3, IMDS, a record anyone under the prefix may write) is range-checked here before it becomes
 * an integer: a double cast to an integer it does not fit is undefined behaviour. */
static inline long long json_int_value(const cJSON *v, long long min, long long max, long long dflt) {
        /* (double)max may round up past max (LLONG_MAX becomes 2^63): 2^63 and beyond are refused outright */
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)min && v->valuedouble <= (double)max) ||
            v->valuedouble >= 9223372036854775808.0 || v->valuedouble < -9223372036854775808.0)
                return dflt; /* NaN fails every comparison */
        long long n = (long long)v->valuedouble;
        return (double)n == v->valuedouble ? n : dflt;
}

static inline long long json_int(const cJSON *o, const char *k, long long min, long long max, long long dflt) {
        return json_int_value(cJSON_GetObjectItemCaseSensitive(o, k), min, max, dflt);
}

#define JSON_TIME_MAX 253402300799LL /* 9999-12-31T23:59:59Z: a time past it is not one */

/* A new object with only the named members of src that are scalars (a number, a boolean, a string of at most
 * max_str bytes): what comes from outside is copied by name, never as a subtree of any depth or size. NULL on
 * ENOMEM. */
static inline cJSON *json_pick(const cJSON *src, const char *const *keys, size_t n, size_t max_str) {
        cJSON *o = cJSON_CreateObject();
        for (size_t i = 0; o && i < n; i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, keys[i]);
                cJSON *c = NULL;
                if (cJSON_IsNumber(v) || cJSON_IsBool(v))
                        c = cJSON_Duplicate(v, false);
                else if (cJSON_IsString(v) && v->valuestring && strlen(v->valuestring) <= max_str)
                        c = cJSON_CreateString(v->valuestring);
                if (c && !cJSON_AddItemToObject(o, keys[i], c))
                        cJSON_Delete(c);
        }
        return o;
}
