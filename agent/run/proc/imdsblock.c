/* SPDX-License-Identifier: Apache-2.0 */
/* imdsblock.c — the run user kept from IMDS by a netfilter rule on its uid (imdsblock.h). */
#include "run/proc/imdsblock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "child.h"
#include "util.h"

int imds_block_targets(const char *endpoint, struct imds_target t[3], char *err, size_t errlen) {
        /* AWS's two addresses always (an agent pointed at one still leaves the other reachable), and the agent's own
         * endpoint when it is another */
        t[0] = (struct imds_target){ .host = "169.254.169.254", .port = 80 };
        t[1] = (struct imds_target){ .host = "fd00:ec2::254", .port = 80, .v6 = true };
        if (!endpoint || !*endpoint)
                return 2;
        const char *p = strstr(endpoint, "://");
        bool https = !strncmp(endpoint, "https://", 8);
        p = p ? p + 3 : endpoint;
        char host[64] = "";
        int port = https ? 443 : 80;
        const char *rest;
        if (*p == '[') {
                const char *close = strchr(p, ']');
                if (!close || (size_t)(close - p - 1) >= sizeof host)
                        goto bad;
                snprintf(host, sizeof host, "%.*s", (int)(close - p - 1), p + 1);
                rest = close + 1;
        } else {
                size_t n = strcspn(p, ":/");
                if (n == 0 || n >= sizeof host)
                        goto bad;
                snprintf(host, sizeof host, "%.*s", (int)n, p);
                rest = p + n;
        }
        if (*rest == ':') {
                char *end;
                long v = strtol(rest + 1, &end, 10);
                if (end == rest + 1 || v <= 0 || v > 65535 || (*end && *end != '/'))
                        goto bad;
                port = (int)v;
        } else if (*rest && *rest != '/')
                goto bad;
        unsigned char a[16];
        bool v6 = inet_pton(AF_INET6, host, a) == 1;
        if (!v6 && inet_pton(AF_INET, host, a) != 1) {
                snprintf(err, errlen, "AWS_EC2_METADATA_SERVICE_ENDPOINT %s: its host is not an IP address, so the "
                         "experiment cannot be kept from it", endpoint);
                return -EINVAL;
        }
        for (int i = 0; i < 2; i++)
                if (t[i].port == port && t[i].v6 == v6 && !strcmp(t[i].host, host))
                        return 2; /* one of AWS's */
        t[2] = (struct imds_target){ .port = port, .v6 = v6 };
        snprintf(t[2].host, sizeof t[2].host, "%s", host);
        return 3;
bad:
        snprintf(err, errlen, "AWS_EC2_METADATA_SERVICE_ENDPOINT %s: not a URL mayfly can read", endpoint);
        return -EINVAL;
}

int imds_block_nft(uid_t uid, const struct imds_target *t, int n, char *out, size_t outlen) {
        /* add-then-delete-then-add: the table exists before it is deleted, so one transaction replaces it whatever
         * was there (a rule from an earlier run of the same user) */
        int w = snprintf(out, outlen, "add table inet mayfly_u%u; delete table inet mayfly_u%u; "
                         "add table inet mayfly_u%u; add chain inet mayfly_u%u out { type filter hook output priority 0; "
                         "policy accept; }; ", (unsigned)uid, (unsigned)uid, (unsigned)uid, (unsigned)uid);
        for (int i = 0; i < n && w >= 0 && (size_t)w < outlen; i++)
                w += snprintf(out + w, outlen - (size_t)w, "add rule inet mayfly_u%u out meta skuid %u meta mark != "
                              "0x%x %s daddr %s tcp dport %d reject with tcp reset; ", (unsigned)uid, (unsigned)uid,
                              IMDS_SO_MARK, t[i].v6 ? "ip6" : "ip", t[i].host, t[i].port);
        return w < 0 || (size_t)w >= outlen ? -ENOBUFS : 0;
}

/* Runs argv (looked up in PATH), its output dropped, for at most 30 s. 0 on exit 0, -ENOENT when it is not
 * installed, -ETIMEDOUT, -EIO. */
static int run_quiet(char *const *argv) {
        int st = 0;
        int r = child_run(argv, 30, NULL, 0, NULL, 0, &st);
        if (r < 0)
                return r;
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* iptables (or ip6tables) -w OP OUTPUT <the rule for uid and t> */
static int iptables_rule(const char *op, uid_t uid, const struct imds_target *t) {
        char port[16], owner[16], mark[16];
        snprintf(port, sizeof port, "%d", t->port);
        snprintf(owner, sizeof owner, "%u", (unsigned)uid);
        snprintf(mark, sizeof mark, "0x%x", IMDS_SO_MARK);
        char *const argv[] = { t->v6 ? "ip6tables" : "iptables", "-w", (char *)op, "OUTPUT", "-p", "tcp", "-d",
                               (char *)t->host, "--dport", port, "-m", "owner", "--uid-owner", owner, "-m", "mark",
                               "!", "--mark", mark, "-j", "REJECT", "--reject-with", "tcp-reset", NULL };
        return run_quiet(argv);
}

int imds_block_apply(uid_t uid, const char *endpoint, char *err, size_t errlen) {
        struct imds_target t[3];
        int n = imds_block_targets(endpoint, t, err, errlen);
        if (n < 0)
                return n;
        char cmd[1024];
        int r = imds_block_nft(uid, t, n, cmd, sizeof cmd);
        if (r == 0) {
                char *const argv[] = { "nft", cmd, NULL };
                r = run_quiet(argv);
        }
        if (r == 0)
                return 0;
        int nft = r;
        /* no nftables: iptables' owner match, each rule once */
        for (int i = 0; i < n; i++) {
                r = iptables_rule("-C", uid, &t[i]) == 0 ? 0 : iptables_rule("-A", uid, &t[i]);
                if (r < 0 && t[i].v6)
                        r = 0; /* AWS's IPv6 address, on a host without ip6tables: IPv4 is what IMDS is reached on */
                if (r < 0)
                        break;
        }
        if (r == 0)
                return 0;
        snprintf(err, errlen, "cannot keep the experiment from the instance role's credentials (IMDS %s:%d): %s; "
                 "install nftables, or set \"experiment_credentials\": \"instance-role\" to give the experiment the "
                 "instance role (unsafe: it can then end the run, rewrite its results and use every permission of "
                 "the role)", t[0].host, t[0].port,
                 nft == -ENOENT && r == -ENOENT ? "neither nft nor iptables is installed" : "nft and iptables failed");
        return r;
}

void imds_block_remove(uid_t uid, const char *endpoint) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "delete table inet mayfly_u%u", (unsigned)uid);
        char *const argv[] = { "nft", cmd, NULL };
        if (run_quiet(argv) == 0)
                return;
        struct imds_target t[3];
        char err[256];
        int n = imds_block_targets(endpoint, t, err, sizeof err);
        for (int i = 0; i < n; i++)
                while (iptables_rule("-D", uid, &t[i]) == 0)
                        ;
}
