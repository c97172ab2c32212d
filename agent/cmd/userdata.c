/* SPDX-License-Identifier: Apache-2.0 */
/* userdata.c — `mayfly userdata JOB`: the user-data that writes the job, installs mayfly by the chosen route
 * (checksum verified before anything runs), arms the backstop and starts the agent. It is userdata/cloud-config.yaml
 * with its placeholders filled in (values as JSON strings, which YAML reads as double-quoted scalars) and
 * userdata/install.sh embedded as is: both are built in (userdata_blob.S). */
#include "cmd/userdata.h"

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <getopt.h>
#include <regex.h>

#include "cmd/cli.h"
#include "run/base/job.h"

extern const char mayfly_userdata_cloud_config[], mayfly_userdata_install_sh[];

/* Anything that looks like AWS credentials: access key ids, or a secret/token under a telling name. */
int userdata_find_secret(const char *text, char *what, size_t n) {
        static const char *const names[] = { "aws_secret_access_key", "secret_access_key", "aws_session_token",
                                             "secretaccesskey", "aws_access_key_id" };
        regex_t re;
        if (regcomp(&re, "(AKIA|ASIA|AIDA|AROA)[A-Z0-9]{16}", REG_EXTENDED) != 0)
                return -ENOMEM;
        regmatch_t m;
        int found = regexec(&re, text, 1, &m, 0) == 0;
        regfree(&re);
        if (found) {
                snprintf(what, n, "an AWS access key id (%.4s…)", text + m.rm_so);
                return 1;
        }
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                const char *p = strcasestr(text, names[i]);
                if (p) {
                        snprintf(what, n, "a credential setting (%s)", names[i]);
                        return 1;
                }
        }
        return 0;
}

static const char *const route_names[] = { [INSTALL_PREINSTALLED] = "preinstalled", [INSTALL_DEB] = "deb",
                                           [INSTALL_RPM] = "rpm", [INSTALL_BINARY] = "binary" };

static int add_json_string(struct buf *out, const char *v) {
        cJSON *s = cJSON_CreateString(v);
        char *j = s ? cJSON_PrintUnformatted(s) : NULL;
        int r = j ? buf_adds(out, j) : -ENOMEM;
        free(j);
        cJSON_Delete(s);
        return r;
}

/* One line of the skeleton, its placeholders replaced. */
static int fill_line(const char *p, size_t len, const struct kv *vals, size_t n, struct buf *out) {
        const char *e = p + len;
        while (p < e) {
                const char *d = memmem(p, (size_t)(e - p), "${", 2);
                int r = buf_add(out, p, d ? (size_t)(d - p) : (size_t)(e - p));
                if (r < 0 || !d)
                        return r;
                const char *close = memchr(d, '}', (size_t)(e - d));
                char expr[64];
                if (!close || (size_t)(close - d - 2) >= sizeof expr)
                        return -EINVAL;
                snprintf(expr, sizeof expr, "%.*s", (int)(close - d - 2), d + 2);
                bool json = str_has_prefix(expr, "jsonencode(") && str_has_suffix(expr, ")");
                const char *name = json ? expr + strlen("jsonencode(") : expr;
                if (json)
                        expr[strlen(expr) - 1] = 0;
                size_t i = 0;
                while (i < n && strcmp(vals[i].name, name) != 0)
                        i++;
                if (i == n)
                        return -EINVAL;
                r = json ? add_json_string(out, vals[i].value) : buf_adds(out, vals[i].value);
                if (r < 0)
                        return r;
                p = close + 1;
        }
        return 0;
}

int userdata_fill(const char *skeleton, const struct kv *vals, size_t n, struct buf *out) {
        for (const char *line = skeleton; *line;) {
                const char *nl = strchrnul(line, '\n');
                size_t len = (size_t)(nl - line) + (*nl ? 1 : 0);
                const char *t = line + strspn(line, " \t");
                bool drop = line != skeleton && (*t == '#' || *t == '\n' || !*t); /* the first line: #cloud-config */
                int r = drop ? 0 : fill_line(line, len, vals, n, out);
                if (r < 0)
                        return r;
                line += len;
        }
        return 0;
}

int userdata_render(const char *job_text, size_t job_len, const struct userdata_opts *o, char **ret, size_t *ret_len,
                    char *err, size_t errlen) {
        struct job j;
        int r = job_parse(job_text, job_len, &j, err, errlen);
        if (r < 0)
                return r;
        long max_runtime = j.max_runtime;
        long need = j.stop_grace + j.ship_timeout + USERDATA_BOOT_ALLOWANCE;
        job_free(&j);
        if (o->margin_given && o->warning && o->warning_len) {
                if (!max_runtime)
                        snprintf(o->warning, o->warning_len, "--backstop-margin is unused: the job has no max_runtime, "
                                 "so the backstop fires 48h after boot");
                else if (o->margin < need)
                        snprintf(o->warning, o->warning_len, "--backstop-margin %lds is less than stop_grace + "
                                 "ship_timeout + %ds for boot and fetch (%lds): the backstop may power off during the "
                                 "final upload", o->margin, USERDATA_BOOT_ALLOWANCE, need);
        }
        char what[128];
        _cleanup_free_ char *jt = strndup(job_text, job_len);
        if (!jt)
                return -ENOMEM;
        if (userdata_find_secret(jt, what, sizeof what) > 0) {
                snprintf(err, errlen, "the job spec contains %s: user-data is readable by every process on the "
                                      "instance; let the instance role provide credentials", what);
                return -EPERM;
        }
        _cleanup_(buf_freep) struct buf env = BUF_INIT(16384);
        for (size_t i = 0; i < o->n_env; i++) {
                const char *kv = o->env[i];
                const char *eq = strchr(kv, '=');
                bool ok = eq && eq > kv;
                for (const char *p = kv; ok && p < eq; p++)
                        ok = isalnum((unsigned char)*p) || *p == '_';
                if (!ok || strchr(kv, '\n')) {
                        snprintf(err, errlen, "--env '%s' is not KEY=VALUE", kv);
                        return -EINVAL;
                }
                if (userdata_find_secret(kv, what, sizeof what) > 0) {
                        snprintf(err, errlen, "--env %.*s holds %s: let the instance role provide credentials",
                                 (int)(eq - kv), kv, what);
                        return -EPERM;
                }
                r = buf_printf(&env, "%s\n", kv);
                if (r < 0)
                        return r;
        }
        /* the backstop: max_runtime plus a margin for fetch, boot and the final upload (default 48 h) */
        char backstop[32];
        snprintf(backstop, sizeof backstop, "%ld", max_runtime ? max_runtime + o->margin : 48 * 3600);
        const struct kv vals[] = {
                { "job", jt },
                { "env", env.data ? env.data : "" },
                { "backstop_seconds", backstop },
                { "install_sh", mayfly_userdata_install_sh },
                { "install_route", route_names[o->route] },
                { "install_source", o->url ? o->url : "" },
                { "install_sha256", o->sha256 ? o->sha256 : "" },
                { "install_region", o->region ? o->region : "" },
        };
        struct buf out = BUF_INIT(1 << 20);
        r = userdata_fill(mayfly_userdata_cloud_config, vals, ARRAY_SIZE(vals), &out);
        if (r < 0) {
                snprintf(err, errlen, "cannot fill in the user-data template: %s", strerror(-r));
                buf_free(&out);
                return r;
        }
        *ret_len = out.len;
        *ret = buf_steal(&out);
        return 0;
}

/* gzip through libarchive's raw format (cloud-init recognises gzip by its magic bytes). */
int userdata_gzip(const char *in, size_t len, char **ret, size_t *ret_len) {
        size_t cap = len + 1024, used = 0;
        char *out = malloc(cap);
        if (!out)
                return -ENOMEM;
        struct archive *a = archive_write_new();
        struct archive_entry *e = archive_entry_new();
        int r = 0;
        if (!a || !e || archive_write_add_filter_gzip(a) != ARCHIVE_OK || archive_write_set_format_raw(a) != ARCHIVE_OK ||
            archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
            archive_write_open_memory(a, out, cap, &used) != ARCHIVE_OK)
                r = -EIO;
        if (r == 0) {
                archive_entry_set_pathname(e, "user-data");
                archive_entry_set_filetype(e, AE_IFREG);
                archive_entry_set_size(e, (la_int64_t)len);
                if (archive_write_header(a, e) != ARCHIVE_OK || archive_write_data(a, in, len) != (la_ssize_t)len ||
                    archive_write_close(a) != ARCHIVE_OK)
                        r = -EIO;
        }
        if (e)
                archive_entry_free(e);
        if (a)
                archive_write_free(a);
        if (r < 0) {
                free(out);
                return r;
        }
        *ret = out;
        *ret_len = used;
        return 0;
}

/* s3://BUCKET/KEY with a key the install script can put in a URL as it is. */
static bool s3_source_ok(const char *u) {
        const char *b = u + strlen("s3://"), *slash = strchr(b, '/');
        if (!slash || slash - b < 3 || slash - b > 63 || !slash[1])
                return false;
        for (const char *p = b; p < slash; p++)
                if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' || *p == '.'))
                        return false;
        for (const char *p = slash + 1; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("._~/-", *p))
                        return false;
        return true;
}

int userdata_parse_install(const char *s, struct userdata_opts *o) {
        static const struct { const char *p; enum install_route r; } routes[] = {
                { "deb=", INSTALL_DEB }, { "rpm=", INSTALL_RPM }, { "binary=", INSTALL_BINARY } };
        if (!strcmp(s, "preinstalled")) {
                o->route = INSTALL_PREINSTALLED;
                return 0;
        }
        for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
                if (str_has_prefix(s, routes[i].p)) {
                        o->route = routes[i].r;
                        o->url = s + strlen(routes[i].p);
                        if (str_has_prefix(o->url, "s3://"))
                                return s3_source_ok(o->url) ? 0 : -EINVAL;
                        if (!str_has_prefix(o->url, "https://") && !str_has_prefix(o->url, "http://"))
                                return -EINVAL;
                        for (const char *p = o->url; *p; p++)
                                if (*p == '\'' || *p == '"' || *p == '\\' || (unsigned char)*p <= ' ')
                                        return -EINVAL;
                        return 0;
                }
        return -EINVAL;
}

int userdata_set_margin(const char *s, struct userdata_opts *o) {
        long v;
        if (parse_duration(s, &v) < 0 || v < USERDATA_MARGIN_MIN || v > USERDATA_MARGIN_MAX) {
                log_error("--backstop-margin must be a duration from 1m to 7d (like 45m or 2h), not '%s'", s);
                return -EINVAL;
        }
        o->margin = v;
        o->margin_given = true;
        return 0;
}

int userdata_check_sha256(const struct userdata_opts *o) {
        if (o->route == INSTALL_PREINSTALLED)
                return 0;
        bool ok = o->sha256 && strlen(o->sha256) == 64;
        for (const char *p = o->sha256; ok && *p; p++)
                ok = isxdigit((unsigned char)*p);
        if (!ok) {
                log_error("--install %s needs --sha256 with the file's 64-hex-digit SHA-256",
                          o->route == INSTALL_DEB ? "deb=SRC" : o->route == INSTALL_RPM ? "rpm=SRC" : "binary=SRC");
                return -EINVAL;
        }
        return 0;
}

int cmd_userdata(int argc, char **argv) {
        static const char usage[] =
                "usage: mayfly userdata JOB [--install preinstalled|deb=SRC|rpm=SRC|binary=SRC --sha256 HEX]\n"
                "                           [--env KEY=VALUE]... [--output FILE] [--gzip] [--backstop-margin DURATION]\n\n"
                "  Prints the #cloud-config (userdata/cloud-config.yaml filled in) that writes JOB to\n"
                "  /etc/mayfly/job.json, installs mayfly by the chosen route with userdata/install.sh (its sha256\n"
                "  checked before anything runs; SRC is an https:// URL or s3://BUCKET/KEY, read with the instance\n"
                "  role), arms the backstop timer and starts the agent. The backstop powers the instance off at\n"
                "  boot + max_runtime + 45m (the margin: --backstop-margin, 1m..7d) or boot + 48h without\n"
                "  max_runtime, whatever the agent does. --env lines land in /etc/mayfly/env, read by the unit.\n"
                "  Output above 16 KB is gzipped (cloud-init accepts gzip); --gzip forces it.\n"
                "  A job or --env holding AWS credentials is refused: the instance role provides them.\n";
        static const struct option opts[] = {
                { "install", required_argument, NULL, 'i' }, { "sha256", required_argument, NULL, 's' },
                { "env", required_argument, NULL, 'e' },     { "output", required_argument, NULL, 'o' },
                { "gzip", no_argument, NULL, 'z' },          { "backstop-margin", required_argument, NULL, 'm' },
                { "help", no_argument, NULL, 'h' },          { 0 } };
        struct userdata_opts o = { .route = INSTALL_PREINSTALLED, .margin = USERDATA_BACKSTOP_MARGIN };
        const char *env[USERDATA_MAX_ENV], *output = NULL;
        bool gz = false;
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (ch) {
                case 'i':
                        if (userdata_parse_install(optarg, &o) < 0) {
                                log_error("%s", USERDATA_INSTALL_USAGE);
                                return EXIT_USAGE;
                        }
                        break;
                case 's': o.sha256 = optarg; break;
                case 'e':
                        if (o.n_env >= USERDATA_MAX_ENV) {
                                log_error("too many --env");
                                return EXIT_USAGE;
                        }
                        env[o.n_env++] = optarg;
                        break;
                case 'o': output = optarg; break;
                case 'z': gz = true; break;
                case 'm':
                        if (userdata_set_margin(optarg, &o) < 0)
                                return EXIT_USAGE;
                        break;
                case 'h': fputs(usage, stdout); return EXIT_OK;
                default: fputs(usage, stderr); return EXIT_USAGE;
                }
        }
        o.env = env;
        if (argc - optind != 1) {
                fputs(usage, stderr);
                return EXIT_USAGE;
        }
        if (userdata_check_sha256(&o) < 0)
                return EXIT_USAGE;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = cli_read_job(argv[optind], &text, &len);
        if (r < 0)
                return EXIT_USAGE;
        char err[1024], warning[512] = "";
        _cleanup_free_ char *ud = NULL, *z = NULL;
        size_t udlen = 0, zlen = 0;
        o.warning = warning;
        o.warning_len = sizeof warning;
        r = userdata_render(text, len, &o, &ud, &udlen, err, sizeof err);
        if (r < 0) {
                log_error("%s: %s", argv[optind], err);
                return EXIT_USAGE;
        }
        if (warning[0])
                log_error("warning: %s", warning);
        const char *outp = ud;
        size_t outlen = udlen;
        if (gz || udlen > USERDATA_MAX_RAW) {
                if (userdata_gzip(ud, udlen, &z, &zlen) < 0) {
                        log_error("cannot gzip the user-data");
                        return EXIT_FAIL;
                }
                outp = z;
                outlen = zlen;
        }
        if (outlen > USERDATA_MAX_RAW) {
                log_error("user-data is %zu bytes even gzipped; EC2 allows %d", outlen, USERDATA_MAX_RAW);
                return EXIT_USAGE;
        }
        FILE *f = output ? fopen(output, "we") : stdout;
        if (!f || fwrite(outp, 1, outlen, f) != outlen || (output && fclose(f) != 0)) {
                log_error("cannot write %s", output ? output : "stdout");
                return EXIT_FAIL;
        }
        return EXIT_OK;
}
