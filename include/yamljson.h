/* SPDX-License-Identifier: Apache-2.0 */
/* yamljson.h — a YAML job spec as the JSON every other part reads (libyaml; in the dynamic build only: the static
 * build, and so the instance, always gets JSON from `launch` and `userdata`). Mappings become objects, sequences
 * arrays; a plain scalar is null (null, ~, empty), a boolean (true, false), a number (decimal, 0x, 0o, a float)
 * or else a string; a quoted one is always a string. One document; duplicate keys, non-scalar keys, an alias bomb
 * (more than YAML_MAX_NODES nodes once aliases are followed), NaN and infinities are refused. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct cJSON;

#define YAML_MAX_NODES 100000
#define YAML_MAX_LINES 512

/* Where each JSON path of the document starts: "$.experiments[0].command" -> line 7 (1-based). */
struct yaml_lines {
        size_t n;
        struct {
                char path[200];
                int line;
        } at[YAML_MAX_LINES];
};

/* Whether a path names a YAML file (.yaml, .yml). */
bool yaml_is_yaml_path(const char *path);
/* text (len bytes) -> a cJSON tree in *ret (free it). lines (may be NULL): where each path starts. 0, -ENOTSUP
 * (a build without libyaml), or -EINVAL with "line N: why" in err. */
int yaml_to_json(const char *text, size_t len, struct cJSON **ret, struct yaml_lines *lines, char *err, size_t errlen);
/* The line of the longest path of lines that starts path (0: none). */
int yaml_line_of(const struct yaml_lines *lines, const char *path);
