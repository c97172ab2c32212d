/* userdata.c — `mayfly userdata JOB`: a #cloud-config that writes the job, installs mayfly by the chosen route
 * (checksum verified before anything runs), installs the units and starts the agent. Built with cJSON: the
 * output is JSON-style YAML, which cloud-init's YAML parser reads as is. */
#include "cmd/userdata.h"

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <getopt.h>
#include <regex.h>

#include "cmd/cli.h"
#include "run/job.h"

extern const char mayfly_unit_service[], mayfly_unit_failsafe[], mayfly_unit_backstop_service[],
        mayfly_unit_backstop_timer[];

static void cjson_deletep(cJSON **j) { cJSON_Delete(*j); }

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

static const char install_head[] =
        "#!/bin/sh\n"
        "# Written by `mayfly userdata`: install mayfly, verify its checksum before anything runs, start the agent.\n"
        "# Any failure powers the instance off, so a broken install never leaves it running.\n"
        "set -eu\n"
        "fail() { trap - EXIT; echo \"mayfly install: $*\" >&2; logger -t mayfly-install \"$*\" 2>/dev/null || true;"
        " systemctl poweroff || poweroff -f; exit 1; }\n"
        "trap 'fail \"install script failed\"' EXIT\n"
        "fetch() { if command -v curl >/dev/null; then curl -fsSL --retry 8 --retry-connrefused -o \"$2\" \"$1\";"
        " else wget -q -O \"$2\" \"$1\"; fi; }\n"
        "verify() { echo \"$2  $1\" | sha256sum -c - >/dev/null || fail \"checksum mismatch for $1\"; }\n"
        "tmp=$(mktemp -d)\n";

static const char install_tail[] =
        "if ! id ec2-user >/dev/null 2>&1 && ! id ubuntu >/dev/null 2>&1 && ! id mayfly >/dev/null 2>&1; then\n"
        "  useradd --system --create-home --home-dir /var/lib/mayfly-home --shell /bin/bash mayfly\n"
        "fi\n"
        "systemctl daemon-reload\n"
        "systemctl enable --now mayfly-backstop.timer\n"
        "systemctl enable mayfly.service\n"
        "systemctl start --no-block mayfly.service\n"
        "trap - EXIT\n"
        "rm -rf \"$tmp\"\n";

static int install_script(const struct userdata_opts *o, struct buf *b) {
        int r = buf_adds(b, install_head);
        if (r < 0)
                return r;
        switch (o->route) {
        case INSTALL_PREINSTALLED:
                r = buf_adds(b, "command -v mayfly >/dev/null || fail \"mayfly is not installed on this image\"\n");
                break;
        case INSTALL_DEB:
                r = buf_printf(b,
                               "fetch '%s' \"$tmp/mayfly.deb\"\nverify \"$tmp/mayfly.deb\" %s\n"
                               "export DEBIAN_FRONTEND=noninteractive\n"
                               "apt-get install -y \"$tmp/mayfly.deb\" || { apt-get update && apt-get install -y "
                               "\"$tmp/mayfly.deb\"; }\n",
                               o->url, o->sha256);
                break;
        case INSTALL_RPM:
                r = buf_printf(b,
                               "fetch '%s' \"$tmp/mayfly.rpm\"\nverify \"$tmp/mayfly.rpm\" %s\n"
                               "if command -v dnf >/dev/null; then dnf install -y \"$tmp/mayfly.rpm\"; "
                               "else yum install -y \"$tmp/mayfly.rpm\"; fi\n",
                               o->url, o->sha256);
                break;
        case INSTALL_BINARY:
                r = buf_printf(b,
                               "fetch '%s' \"$tmp/mayfly\"\nverify \"$tmp/mayfly\" %s\n"
                               "install -m 0755 \"$tmp/mayfly\" /usr/bin/mayfly\n"
                               "/usr/bin/mayfly --version >/dev/null || fail \"the downloaded mayfly does not run\"\n",
                               o->url, o->sha256);
                break;
        }
        if (r == 0)
                r = buf_adds(b, install_tail);
        return r;
}

static cJSON *file_entry(const char *path, const char *perm, const char *content) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "path", path);
        cJSON_AddStringToObject(f, "permissions", perm);
        cJSON_AddStringToObject(f, "owner", "root:root");
        cJSON_AddStringToObject(f, "content", content);
        return f;
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
        _cleanup_(cjson_deletep) cJSON *root = cJSON_CreateObject();
        cJSON *files = cJSON_AddArrayToObject(root, "write_files");
        _cleanup_free_ char *jobcopy = strndup(job_text, job_len);
        cJSON_AddItemToArray(files, file_entry("/etc/mayfly/job.json", "0644", jobcopy));
        cJSON_AddItemToArray(files, file_entry("/etc/mayfly/env", "0600", env.data ? env.data : ""));
        if (o->route == INSTALL_BINARY) {
                cJSON_AddItemToArray(files, file_entry("/etc/systemd/system/mayfly.service", "0644", mayfly_unit_service));
                cJSON_AddItemToArray(files, file_entry("/etc/systemd/system/mayfly-failsafe.service", "0644",
                                                       mayfly_unit_failsafe));
                cJSON_AddItemToArray(files, file_entry("/etc/systemd/system/mayfly-backstop.service", "0644",
                                                       mayfly_unit_backstop_service));
                cJSON_AddItemToArray(files, file_entry("/etc/systemd/system/mayfly-backstop.timer", "0644",
                                                       mayfly_unit_backstop_timer));
        }
        /* the backstop: max_runtime plus a margin for fetch, boot and the final upload (default 48 h) */
        char drop[256];
        long deadline = max_runtime ? max_runtime + o->margin : 48 * 3600;
        snprintf(drop, sizeof drop, "[Timer]\nOnBootSec=\nOnBootSec=%lds\n", deadline);
        cJSON_AddItemToArray(files, file_entry("/etc/systemd/system/mayfly-backstop.timer.d/deadline.conf", "0644", drop));
        _cleanup_(buf_freep) struct buf script = BUF_INIT(16384);
        r = install_script(o, &script);
        if (r < 0)
                return r;
        cJSON_AddItemToArray(files, file_entry("/var/lib/mayfly-install.sh", "0700", script.data));
        cJSON *run = cJSON_AddArrayToObject(root, "runcmd");
        cJSON *cmd = cJSON_CreateArray();
        cJSON_AddItemToArray(cmd, cJSON_CreateString("/bin/sh"));
        cJSON_AddItemToArray(cmd, cJSON_CreateString("/var/lib/mayfly-install.sh"));
        cJSON_AddItemToArray(run, cmd);
        _cleanup_free_ char *body = cJSON_PrintUnformatted(root);
        if (!body)
                return -ENOMEM;
        struct buf out = BUF_INIT(1 << 20);
        r = buf_printf(&out, "#cloud-config\n%s\n", body);
        if (r < 0) {
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
                        if (!str_has_prefix(o->url, "https://") && !str_has_prefix(o->url, "http://"))
                                return -EINVAL;
                        for (const char *p = o->url; *p; p++)
                                if (*p == '\'' || *p == '\\' || (unsigned char)*p <= ' ')
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
                          o->route == INSTALL_DEB ? "deb=URL" : o->route == INSTALL_RPM ? "rpm=URL" : "binary=URL");
                return -EINVAL;
        }
        return 0;
}

int cmd_userdata(int argc, char **argv) {
        static const char usage[] =
                "usage: mayfly userdata JOB [--install preinstalled|deb=URL|rpm=URL|binary=URL --sha256 HEX]\n"
                "                           [--env KEY=VALUE]... [--output FILE] [--gzip] [--backstop-margin DURATION]\n\n"
                "  Prints a #cloud-config that writes JOB to /etc/mayfly/job.json, installs mayfly by the chosen\n"
                "  route (its sha256 checked before anything runs), installs the units, arms the backstop timer\n"
                "  and starts the agent. The backstop powers the instance off at boot + max_runtime + 45m (the\n"
                "  margin: --backstop-margin, 1m..7d) or boot + 48h without max_runtime, whatever the agent does.\n"
                "  --env lines land in /etc/mayfly/env, read by the unit. Output above 16 KB is gzipped\n"
                "  (cloud-init accepts gzip); --gzip forces it.\n"
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
                                log_error("--install must be preinstalled, deb=URL, rpm=URL or binary=URL (http/https)");
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
