/* SPDX-License-Identifier: Apache-2.0 */
/* gangnet.h — the network a run's gang shares (`mayfly launch --placement-group cluster`, `--gang-sg`): a cluster
 * placement group and a security group that lets the run's instances reach each other (all traffic from members of
 * itself), both named "mayfly-<run id>" and tagged like the run's template (mayfly:run-id, mayfly:run, Name). EC2
 * refuses to delete either while an instance is in it (InvalidPlacementGroup.InUse, DependencyViolation): the deletes
 * say so with -EBUSY, and gangnet_delete retries them until the instances are gone or its time is up. Every call: 0,
 * or -errno with out->msg one line. */
#pragma once
#include <stdbool.h>

#include "aws/autoscaling.h"

#define GANGNET_STRATEGY "cluster"     /* the one placement strategy launch supports */
#define GANGNET_SG_DESCRIPTION "mayfly: all traffic between the instances of one run"
#define GANGNET_MAX_SGS 8              /* security groups of one run (one; more only after a failed retry) */
#define GANGNET_POLL 2                 /* seconds between the deletes gangnet_delete tries again */
#define GANGNET_NAME_MAX 160           /* "mayfly-<run id>" (a run id is at most 128) */

/* Pure: CreatePlacementGroup's parameters (strategy cluster, tagged with the run; DryRun when dry_run). */
int gangnet_pg_params(const char *name, const char *run_id, const char *job, bool dry_run, struct asg_params *ret);
/* Pure: CreateSecurityGroup's parameters in vpc (NULL: the default VPC; tagged with the run; DryRun when dry_run). */
int gangnet_sg_params(const char *name, const char *vpc, const char *run_id, const char *job, bool dry_run,
                      struct asg_params *ret);
/* Pure: AuthorizeSecurityGroupIngress's parameters: every protocol and port from members of the group itself. */
int gangnet_ingress_params(const char *sg_id, struct asg_params *ret);

/* CreatePlacementGroup (cluster). One of that name already there is 0: the name holds the run id (a launch that
 * continues a run finds its own). */
int ec2_create_placement_group(struct aws_ctx *c, struct http_client *h, const char *name, const char *run_id,
                               const char *job, struct aws_result *out);
/* DeletePlacementGroup: 0, or 1 when it was gone already; instances still in it: -EBUSY. */
int ec2_delete_placement_group(struct aws_ctx *c, struct http_client *h, const char *name, struct aws_result *out);
/* The VPC the run's instances land in: subnet's (DescribeSubnets), else (subnet NULL) the region's default VPC
 * (-MF_ENOTFOUND when it has none). */
int ec2_vpc_of(struct aws_ctx *c, struct http_client *h, const char *subnet, char *vpc, size_t n,
               struct aws_result *out);
/* CreateSecurityGroup in vpc and its self-referencing ingress rule; its id (sg-…) into id. A group of that name
 * already in the VPC (a continued run's) is reused, its rule made sure of. */
int ec2_create_gang_sg(struct aws_ctx *c, struct http_client *h, const char *name, const char *vpc, const char *run_id,
                       const char *job, char *id, size_t idlen, struct aws_result *out);
/* DeleteSecurityGroup by id: 0, or 1 when it was gone already; still used by an instance (or referenced by another group):
 * -EBUSY. */
int ec2_delete_security_group(struct aws_ctx *c, struct http_client *h, const char *id, struct aws_result *out);
/* The security groups tagged mayfly:run-id=run_id: their ids into ids[0..max), how many in *n. */
int ec2_security_groups_of_run(struct aws_ctx *c, struct http_client *h, const char *run_id, char ids[][32],
                               size_t max, size_t *n, struct aws_result *out);

/* What to delete of a run's gang network. */
struct gangnet {
        const char *placement_group;   /* its name, NULL: none */
        const char *security_group;    /* its id, NULL: none (or: look for the run's by tag, with run_id) */
        const char *run_id;            /* not NULL: also every security group tagged with it */
        void (*nap)(double seconds);   /* how to wait between tries (an agent's worker_nap); NULL: sleep */
};
/* Deletes the placement group and the security groups, trying again every GANGNET_POLL seconds while EC2 says
 * instances still use them (their instances are terminating), until wait_s seconds have passed. 0 when all are
 * gone; -EBUSY when one is still in use at the end (msg names what is left and the command that deletes it); another
 * -errno when EC2 refused otherwise (msg says why). msg also lists what was deleted. */
int gangnet_delete(struct aws_ctx *c, struct http_client *h, const struct gangnet *g, long wait_s, char *msg,
                   size_t msglen);
