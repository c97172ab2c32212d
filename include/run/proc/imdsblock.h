/* SPDX-License-Identifier: Apache-2.0 */
/* imdsblock.h — the instance role's credentials kept from the experiment: the IMDS address and port the agent itself
 * uses (AWS_EC2_METADATA_SERVICE_ENDPOINT, else 169.254.169.254:80 and [fd00:ec2::254]:80) refused to the run user's
 * uid by a netfilter rule (nftables' `meta skuid`, else iptables' owner match): one table per uid, so that runs of
 * different users never touch each other's rule. Why netfilter and not a cgroup: the experiment shares the agent's
 * cgroup (a scope of its own is not there on every host), and a rule on the uid holds for every process the
 * experiment starts, detached or not, and for nothing else on the instance. The agent's own threads that work as
 * the run user (fsuid: extraction, uploads) may still refresh the instance role from IMDS: its IMDS sockets carry
 * SO_MARK IMDS_SO_MARK (aws/imds.h), which the rule lets through and which only a process with CAP_NET_ADMIN can set
 * (never the experiment). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "aws/imds.h"

struct imds_target {
        char host[64];                /* an IP literal, v4 or v6 (no brackets) */
        int port;
        bool v6;
};

/* Pure: AWS's two addresses, and the endpoint URL's (NULL or empty: none) when it is another: 2 or 3 into t[3];
 * -EINVAL (err says why) for an endpoint whose host is not an IP literal. */
int imds_block_targets(const char *endpoint, struct imds_target t[3], char *err, size_t errlen);
/* Pure: nft's one-transaction command that makes table inet mayfly_u<uid> hold exactly the refusal of targets. */
int imds_block_nft(uid_t uid, const struct imds_target *t, int n, char *out, size_t outlen);
/* The rule in place for uid (replacing one from before). 0, or -errno with a one-line err naming what is missing. */
int imds_block_apply(uid_t uid, const char *endpoint, char *err, size_t errlen);
/* The rule for uid taken away (nothing when there is none). */
void imds_block_remove(uid_t uid, const char *endpoint);
