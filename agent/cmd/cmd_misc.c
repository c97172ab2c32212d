/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_misc.c — `mayfly presign`, `mayfly metadata`, `mayfly terminate`. */
#include <getopt.h>

#include "cmd/cli.h"
#include "aws/ec2.h"
#include "aws/s3.h"

static int simple_opts(int argc, char **argv, const char *usage, const struct option *extra, int (*on)(int, const char *)) {
        struct option opts[8] = { { "help", no_argument, NULL, 'h' } };
        size_t n = 1;
        for (; extra && extra[n - 1].name && n < 7; n++)
                opts[n] = extra[n - 1];
        opts[n] = (struct option){ 0 };
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (ch == 'h') {
                        fputs(usage, stdout);
                        return 1;
                }
                if (ch == '?' || !on || on(ch, optarg) < 0) {
                        fputs(usage, stderr);
                        return -1;
                }
        }
        return 0;
}

static long presign_expires = 3600;

static int presign_opt(int ch, const char *arg) {
        if (ch == 'e' && parse_int(arg, 1, SIGV4_MAX_PRESIGN_EXPIRES, &presign_expires) < 0) {
                log_error("--expires must be 1..%d seconds (7 days)", SIGV4_MAX_PRESIGN_EXPIRES);
                return -1;
        }
        return 0;
}

int cmd_presign(int argc, char **argv) {
        static const char usage[] = "usage: mayfly presign s3://BUCKET/KEY [--expires SECONDS]\n\n"
                                    "  Prints a presigned GET URL. --expires: 1..604800 (7 days), default 3600;\n"
                                    "  no longer than the credentials that sign it (a role's session).\n";
        static const struct option o[] = { { "expires", required_argument, NULL, 'e' }, { 0 } };
        int s = simple_opts(argc, argv, usage, o, presign_opt);
        if (s)
                return s > 0 ? EXIT_OK : EXIT_USAGE;
        if (argc - optind != 1) {
                fputs(usage, stderr);
                return EXIT_USAGE;
        }
        char err[512];
        _cleanup_free_ char *bucket = NULL, *key = NULL;
        if (s3_parse_uri(argv[optind], &bucket, &key, err, sizeof err) < 0 || !*key) {
                log_error("%s", *err ? err : "presign needs s3://BUCKET/KEY with a key");
                return EXIT_USAGE;
        }
        struct aws_ctx c;
        if (cli_aws_init(&c) < 0)
                return EXIT_FAIL;
        struct buf url = BUF_INIT(16384);
        int r = s3_presign_get(&c, bucket, key, presign_expires, now_wall(), &url, NULL, err, sizeof err);
        if (r == 0)
                printf("%s\n", url.data);
        else
                log_error("%s", err);
        buf_free(&url);
        aws_ctx_free(&c);
        return exit_code_for(r);
}

int cmd_metadata(int argc, char **argv) {
        static const char usage[] = "usage: mayfly metadata [PATH]\n\n"
                                    "  Prints an IMDS value, e.g. meta-data/instance-id (default: meta-data/).\n";
        int s = simple_opts(argc, argv, usage, NULL, NULL);
        if (s)
                return s > 0 ? EXIT_OK : EXIT_USAGE;
        if (argc - optind > 1) {
                fputs(usage, stderr);
                return EXIT_USAGE;
        }
        const char *path = argc > optind ? argv[optind] : "meta-data/";
        while (*path == '/')
                path++;
        if (str_has_prefix(path, "latest/"))
                path += 7;
        struct imds m;
        if (imds_init(&m) < 0)
                return EXIT_FAIL;
        char err[512];
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        int r = imds_get(&m, path, &body, &len, err, sizeof err);
        if (r == 0) {
                fwrite(body, 1, len, stdout);
                if (len && body[len - 1] != '\n' && isatty(STDOUT_FILENO))
                        putchar('\n');
        } else
                log_error("%s", err);
        imds_free(&m);
        return exit_code_for(r);
}

static bool terminate_dry;

static int terminate_opt(int ch, const char *arg) {
        terminate_dry = ch == 'd';
        return 0;
}

int cmd_terminate(int argc, char **argv) {
        static const char usage[] = "usage: mayfly terminate [--dry-run]\n\n"
                                    "  Terminates the instance this runs on (instance id from IMDS).\n"
                                    "  --dry-run only checks that the instance role may do it.\n";
        static const struct option o[] = { { "dry-run", no_argument, NULL, 'd' }, { 0 } };
        int s = simple_opts(argc, argv, usage, o, terminate_opt);
        if (s)
                return s > 0 ? EXIT_OK : EXIT_USAGE;
        if (argc != optind) {
                fputs(usage, stderr);
                return EXIT_USAGE;
        }
        struct aws_ctx c;
        if (cli_aws_init(&c) < 0)
                return EXIT_FAIL;
        char err[512], state[64] = "";
        _cleanup_free_ char *id = NULL;
        int r = imds_get(&c.imds, "meta-data/instance-id", &id, NULL, err, sizeof err);
        struct aws_result res = { 0 };
        if (r == 0) {
                struct http_client h;
                r = http_client_init(&h);
                if (r == 0)
                        r = ec2_terminate(&c, &h, str_trim(id), terminate_dry, state, sizeof state, &res);
                http_client_free(&h);
                errf(err, sizeof err, "%s", res.msg);
        }
        if (r == 0)
                printf("%s %s\n", str_trim(id), state);
        else
                log_error("%s", err);
        aws_ctx_free(&c);
        return exit_code_for(r);
}
