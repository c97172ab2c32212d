/* SPDX-License-Identifier: Apache-2.0 */
/* xcreds.c — the instance role kept from the experiment, and the experiment's own credentials (xcreds.h). */
#include "run/drive/xcreds.h"

#include <fcntl.h>
#include <unistd.h>

#include "aws/s3.h"
#include "aws/sts.h"
#include "log.h"
#include "run/proc/imdsblock.h"

struct start_call {
        char role[2048];
        _Bool derived;                /* the instance role itself, narrowed by the session policy */
        char err[2600];
};

/* On a worker (io): the role to assume, and the server started with it. */
static int start_server(struct run *R, void *arg) {
        struct start_call *sc = arg;
        if (R->job.experiment_role) {
                snprintf(sc->role, sizeof sc->role, "%s", R->job.experiment_role);
        } else {
                char caller[2048];
                int r = sts_caller_arn(&R->c, caller, sizeof caller, sc->err, sizeof sc->err);
                if (r < 0)
                        return r;
                if (expcreds_role_of(caller, sc->role, sizeof sc->role) < 0) {
                        snprintf(sc->err, sizeof sc->err, "the instance's identity %s is not a role's session: name "
                                 "the role the experiment is to have in \"experiment_role\"", caller);
                        return -EINVAL;
                }
                sc->derived = 1;
        }
        _cleanup_free_ char *policy = NULL;
        if (sc->derived) {
                _cleanup_free_ char *sb = NULL, *sk = NULL;
                char e[256], outputs[1300];
                if (R->job.source && str_has_prefix(R->job.source, "s3://"))
                        s3_parse_uri(R->job.source, &sb, &sk, e, sizeof e);
                snprintf(outputs, sizeof outputs, "%soutputs/", R->prefix);
                policy = expcreds_policy(sb, sk, R->bucket, outputs);
                if (!policy)
                        return -ENOMEM;
        }
        char session[64];
        snprintf(session, sizeof session, "mayfly-exp-%.40s", R->inst.id[0] ? R->inst.id : "local");
        return expcreds_start(&R->xcreds, &R->c, sc->role, policy, session, sc->err, sizeof sc->err);
}

/* The token, for the run user alone: root writes it in its own state directory (no path the experiment can
 * influence), then hands the file to the run user. */
static int write_token(struct run *R) {
        if (pathf(R->token_path, sizeof R->token_path, "%s/experiment-token", R->state_dir) < 0)
                return -ENAMETOOLONG;
        unlink(R->token_path);
        _cleanup_close_ int fd = open(R->token_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
        if (fd < 0)
                return -errno;
        size_t n = strlen(R->xcreds.token);
        if (write(fd, R->xcreds.token, n) != (ssize_t)n || fchown(fd, R->user.uid, R->user.gid) < 0)
                return -EIO;
        return 0;
}

int prepare_credentials(struct run *R) {
        if (!R->user.switch_user)
                return -1; /* not root: the experiment runs as the agent's own user, with what it has */
        if (R->user.uid == 0) {
                /* a rule on uid 0 would close IMDS to the agent itself; root has every key anyway */
                log_warn("the experiment runs as root (\"user\": \"root\"): nothing on the instance is kept from it, "
                         "the instance role's keys included");
                return -1;
        }
        if (R->job.exp_credentials == EXPC_INSTANCE_ROLE) {
                log_warn("experiment_credentials is instance-role: the experiment can read the instance role's keys "
                         "from IMDS, and with them end the run, rewrite its results and use every permission of the "
                         "role");
                return -1;
        }
        if (!R->imds_blocked) {
                char err[1024];
                const char *ep = env_nonempty("AWS_EC2_METADATA_SERVICE_ENDPOINT");
                if (imds_block_apply(R->user.uid, ep, err, sizeof err) < 0)
                        return failed(R, "%s", err);
                R->imds_blocked = true;
                R->blocked_uid = R->user.uid;
                log_info("IMDS (%s) is closed to the run user %s: the instance role's keys are not the experiment's",
                         ep ? ep : "169.254.169.254, fd00:ec2::254", R->user.name);
        }
        if (R->job.exp_credentials == EXPC_NONE || R->xcreds.running)
                return -1;
        struct start_call sc = { 0 };
        if (io(R, start_server, &sc) < 0) {
                log_warn("the experiment gets no AWS credentials: %s", sc.err[0] ? sc.err : "they could not be had");
                return -1;
        }
        int r = write_token(R);
        if (r < 0) {
                log_warn("the experiment gets no AWS credentials: its token cannot be written to %s: %s",
                         R->token_path, strerror(-r));
                expcreds_stop(&R->xcreds);
                R->token_path[0] = 0;
                return -1;
        }
        log_info("the experiment's AWS credentials: role %s%s, served at %s", sc.role,
                 sc.derived ? " narrowed to reading the source and writing outputs/" : "", R->xcreds.url);
        return -1;
}

size_t credentials_env(const struct run *R, char out[][2400], size_t size) {
        size_t n = 0;
        if (R->imds_blocked)
                snprintf(out[n++], size, "AWS_EC2_METADATA_DISABLED=true");
        if (R->xcreds.running && R->token_path[0]) {
                snprintf(out[n++], size, "AWS_CONTAINER_CREDENTIALS_FULL_URI=%s", R->xcreds.url);
                snprintf(out[n++], size, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=%s", R->token_path);
                /* older SDKs (botocore before 1.33) read the token itself, not its file */
                snprintf(out[n++], size, "AWS_CONTAINER_AUTHORIZATION_TOKEN=%s", R->xcreds.token);
        }
        return n;
}

void drop_credentials(struct run *R) {
        expcreds_stop(&R->xcreds);
        if (R->token_path[0])
                unlink(R->token_path);
        if (R->imds_blocked)
                imds_block_remove(R->blocked_uid, env_nonempty("AWS_EC2_METADATA_SERVICE_ENDPOINT"));
        R->imds_blocked = false;
}
