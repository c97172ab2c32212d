/* SPDX-License-Identifier: Apache-2.0 */
/* preflight.h — what `mayfly launch` checks before it uploads or creates anything (and all `launch --dry-run`
 * does): the install route, the results location (a probe written and deleted), the S3 source and every input's
 * (a prefix holds an object, one object exists), the instance
 * profile, the image and its architecture against the instance types, each type offered where it would run, and
 * RunInstances or CreateLaunchTemplate with DryRun (the EC2 and iam:PassRole permissions). Each refusal is one line
 * that names the thing and what to do. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "aws/aws.h"

struct preflight {
        const char *results;            /* the job's results URI */
        const char *source;             /* the job's source when it is in S3 (NULL: a local folder, packed later) */
        const char *const *inputs;      /* the sources of the job's inputs (s3://bucket/prefix/ or .../key) */
        size_t n_inputs;
        const char *profile;            /* --iam-instance-profile (NULL: none) */
        const char *image;
        const char *const *types;
        size_t n_types;
        const char *const *subnets;
        size_t n_subnets;
        const char *zone;               /* --availability-zone (NULL: none) */
        bool group;                     /* a launch template and an Auto Scaling group (else RunInstances) */
        bool install_given;             /* --install (preinstalled says the image carries mayfly) */
        bool cluster;                   /* --placement-group cluster: the subnets in one zone; CreatePlacementGroup
                                         * with DryRun */
        bool gang_sg;                   /* --gang-sg: a VPC to make it in; CreateSecurityGroup with DryRun */
        bool efa;                       /* --efa: every type supports EFA (DescribeInstanceTypes) */
};

/* 0 when everything checked passes (warnings printed), else the exit code the refusal calls for (EXIT_USAGE,
 * EXIT_NOTFOUND, EXIT_AUTH, EXIT_FAIL) with its line in err. */
int preflight_run(struct aws_ctx *c, const struct preflight *p, char *err, size_t errlen);
/* Pure: every experiment's "nodes" fits the instances this launch starts (instances: --instances N, 0 when not
 * given: one instance). 0, or EXIT_USAGE with one line in err naming the experiment and both numbers. */
struct cJSON;
int preflight_gang_fits(const struct cJSON *job, long instances, char *err, size_t errlen);
/* Pure: the largest "nodes" of the job's experiments (1 when none says). */
int preflight_max_nodes(const struct cJSON *job);
/* Pure: the architectures an image and the instance types have agree; the first type that does not, or -1. */
int preflight_arch_mismatch(const char *image_arch, const char *const *type_archs, size_t n);
