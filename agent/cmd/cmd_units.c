/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_units.c — `mayfly install-units [DIR]`: the systemd units built into the binary (units_blob.S), written where
 * no package put them: the binary install route (userdata/install.sh), or an image built with just the binary. */
#include <fcntl.h>
#include <sys/stat.h>

#include "cmd/cli.h"

extern const char mayfly_unit_service[], mayfly_unit_failsafe[], mayfly_unit_scratch[], mayfly_unit_backstop_service[],
        mayfly_unit_backstop_timer[];

#define UNITS_DEFAULT_DIR "/etc/systemd/system"

/* path.tmp, fsync, rename: a unit is never seen half-written. */
static int write_unit(const char *dir, const char *name, const char *text, char *err, size_t errlen) {
        char path[4096], tmp[4200];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
                errf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
                return -errno;
        }
        size_t len = strlen(text);
        for (size_t done = 0; done < len;) {
                ssize_t w = write(fd, text + done, len - done);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0) {
                        int e = errno;
                        unlink(tmp);
                        errf(err, errlen, "cannot write %s: %s", tmp, strerror(e));
                        return -e;
                }
                done += (size_t)w;
        }
        if (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || rename(tmp, path) < 0) {
                int e = errno;
                unlink(tmp);
                errf(err, errlen, "cannot install %s: %s", path, strerror(e));
                return -e;
        }
        return 0;
}

int cmd_install_units(int argc, char **argv) {
        static const struct { const char *name; const char *text; } units[] = {
                { "mayfly.service", mayfly_unit_service },
                { "mayfly-failsafe.service", mayfly_unit_failsafe },
                { "mayfly-scratch.service", mayfly_unit_scratch },
                { "mayfly-backstop.service", mayfly_unit_backstop_service },
                { "mayfly-backstop.timer", mayfly_unit_backstop_timer },
        };
        if (argc > 2 || (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || argv[1][0] == '-'))) {
                bool help = argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
                fprintf(help ? stdout : stderr,
                        "usage: mayfly install-units [DIR]\n\n"
                        "  Writes the systemd units built into this binary (mayfly.service, mayfly-failsafe.service,\n"
                        "  mayfly-scratch.service, mayfly-backstop.service, mayfly-backstop.timer;\n"
                        "  ExecStart=/usr/bin/mayfly) to DIR (default\n"
                        "  %s), for images where no package installed them. Enables and starts nothing:\n"
                        "  run systemctl daemon-reload, as the user-data's install script does.\n", UNITS_DEFAULT_DIR);
                return help ? EXIT_OK : EXIT_USAGE;
        }
        const char *dir = argc == 2 ? argv[1] : UNITS_DEFAULT_DIR;
        struct stat st;
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                log_error("%s is not a directory", dir);
                return EXIT_USAGE;
        }
        char err[512];
        for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
                int r = write_unit(dir, units[i].name, units[i].text, err, sizeof err);
                if (r < 0) {
                        log_error("%s", err);
                        return exit_code_for(r);
                }
                printf("%s/%s\n", dir, units[i].name);
        }
        return EXIT_OK;
}
