/* SPDX-License-Identifier: Apache-2.0 */
/* instance.h — what the agent learns of its instance from IMDS. */
#pragma once
#include <stdbool.h>

#include "aws/imds.h"

/* What the agent learnt of its instance from IMDS ("" where it did not). */
struct instance_info {
        char id[64], type[64], region[64], az[64], ami[64], lifecycle[32];
        char private_ip[16];          /* the primary private IPv4 ("" when the instance has none: IPv6-only) */
};

/* The identity document (id, type, region, AZ, AMI) and the lifecycle (spot / on-demand); fields IMDS did not give
 * stay "". 0, or -errno when there is no instance id (err says why: off EC2, IMDS unreachable). */
int instance_load(struct imds *m, struct instance_info *ret, char *err, size_t errlen);
/* Whether IMDS has a spot interruption notice now (false when it has none or cannot be asked). */
bool instance_spot_pending(struct imds *m);
