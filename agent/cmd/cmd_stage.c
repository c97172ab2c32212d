/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_stage.c — `mayfly stage SOURCE DIR`: an input staged into a local directory exactly as the agent stages a
 * job's inputs (inputs.h): the objects under a prefix (or one object) downloaded in parallel and checked, and on the
 * next run only what changed, through a manifest kept next to DIR. On a laptop it mirrors a dataset; `make bench`
 * times the agent's staging with it. */
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "run/proc/inputs.h"

static void stage_usage(FILE *f) {
        fprintf(f, "usage: mayfly stage SOURCE DIR [--read-only] [--no-sync] [--manifest FILE] [--quiet]\n\n"
                   "Downloads s3://bucket/prefix/ (every object under it, as a tree) or s3://bucket/key (into DIR) the\n"
                   "way the agent stages a job's inputs; run again, it downloads only the objects S3 changed and the\n"
                   "files changed or removed here, and removes what S3 no longer holds (unless changed here).\n"
                   "  --read-only      files 0444, directories 0555\n"
                   "  --no-sync        staged before: do not look again (\"sync\": false)\n"
                   "  --manifest FILE  what was staged (default: DIR.mayfly-manifest.jsonl, next to DIR)\n");
}

int cmd_stage(int argc, char **argv) {
        static const struct option opts[] = {
                { "read-only", no_argument, NULL, 'r' }, { "no-sync", no_argument, NULL, 'n' },
                { "manifest", required_argument, NULL, 'm' }, { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' }, { 0 },
        };
        struct job_input in = { .sync = true };
        const char *manifest = NULL;
        bool quiet = false;
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
                switch (ch) {
                case 'r': in.read_only = true; break;
                case 'n': in.sync = false; break;
                case 'm': manifest = optarg; break;
                case 'q': quiet = true; break;
                case 'h': stage_usage(stdout); return EXIT_OK;
                default: stage_usage(stderr); return EXIT_USAGE;
                }
        }
        if (argc - optind != 2 || !str_has_prefix(argv[optind], "s3://")) {
                stage_usage(stderr);
                return EXIT_USAGE;
        }
        in.source = argv[optind];
        char err[1024];
        _cleanup_free_ char *b0 = NULL, *k0 = NULL;
        if (s3_parse_uri(in.source, &b0, &k0, err, sizeof err) < 0) {
                log_error("%s", err);
                return EXIT_USAGE;
        }
        in.prefix = !*k0 || str_has_suffix(in.source, "/");
        /* DIR is made if missing; staged as the tree DIR beneath its parent (a path beneath a tree names something) */
        char dir[4096];
        str_copy(dir, sizeof dir, argv[optind + 1]);
        while (strlen(dir) > 1 && str_has_suffix(dir, "/"))
                dir[strlen(dir) - 1] = 0;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                log_error("cannot make %s: %s", dir, strerror(errno));
                return EXIT_FAIL;
        }
        _cleanup_free_ char *real = realpath(dir, NULL);
        if (!real || !strcmp(real, "/")) {
                log_error("%s: %s", dir, real ? "staging into / itself is refused" : strerror(errno));
                return EXIT_USAGE;
        }
        _cleanup_free_ char *d1 = strdup(real), *d2 = strdup(real);
        if (!d1 || !d2)
                return EXIT_FAIL;
        const char *parent = dirname(d1), *base = basename(d2);
        char place[NAME_MAX + 2];
        snprintf(place, sizeof place, "%s%s", base, in.prefix ? "" : "/");
        in.path = place;
        in.name = (char *)base; /* what messages call it: "input NAME: ..." */
        char mpath[4200];
        if (!manifest && pathf(mpath, sizeof mpath, "%s.mayfly-manifest.jsonl", real) < 0) {
                log_error("%s: too long a path", real);
                return EXIT_USAGE;
        }
        _cleanup_close_ int rootfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0) {
                log_error("cannot open %s: %s", parent, strerror(errno));
                return EXIT_FAIL;
        }
        struct aws_ctx c;
        if (cli_aws_init(&c) < 0)
                return EXIT_FAIL;
        struct run_user me = { .switch_user = false }; /* the invoking user's own files */
        struct stage_progress pg = { .input = 0 };
        pg.bytes = xfer_progress_new(0, quiet ? -1 : STDERR_FILENO);
        if (!pg.bytes)
                pg.bytes = xfer_progress_new(0, -1);
        struct stage_stats st;
        double t0 = now_mono();
        int r = inputs_stage(&c, &in, &me, rootfd, parent, manifest ? manifest : mpath, &pg, &st, err, sizeof err);
        double secs = now_mono() - t0;
        xfer_progress_done(pg.bytes);
        aws_ctx_free(&c);
        if (r < 0) {
                log_error("%s", err);
                return exit_code_for(r);
        }
        if (!quiet) {
                char b[32];
                fmt_bytes(st.bytes, b);
                if (st.skipped)
                        printf("%s: staged before, not looked at (--no-sync)\n", real);
                else
                        printf("%s: %zu of %zu object%s downloaded (%s in %.1fs), %zu kept, %zu removed\n", real,
                               st.fetched, st.listed, st.listed == 1 ? "" : "s", b, secs, st.kept, st.removed);
        }
        return EXIT_OK;
}
