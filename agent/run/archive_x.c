/* archive_x.c — libarchive extraction with path checks before anything touches the disk. */
#include "run/archive_x.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "util.h"

static const char *skip_dot_slash(const char *p) {
        while (p[0] == '.' && p[1] == '/')
                p += 2;
        return p;
}

bool archive_path_safe(const char *path) {
        if (!path || !*path || path[0] == '/')
                return false;
        for (const char *p = path; *p;) {
                const char *e = strchrnul(p, '/');
                if (e - p == 2 && p[0] == '.' && p[1] == '.')
                        return false;
                p = *e ? e + 1 : e;
        }
        return true;
}

/* Resolve target lexically against the entry's directory; the result must stay at or below the root. */
bool archive_symlink_safe(const char *path, const char *target) {
        if (!archive_path_safe(path) || !target || !*target || target[0] == '/')
                return false;
        int depth = 0;
        /* depth of the directory holding the link */
        for (const char *p = path; *p;) {
                const char *e = strchrnul(p, '/');
                if (*e && !(e - p == 1 && p[0] == '.') && e != p)
                        depth++;
                p = *e ? e + 1 : e;
        }
        for (const char *p = target; *p;) {
                const char *e = strchrnul(p, '/');
                size_t l = (size_t)(e - p);
                if (l == 2 && p[0] == '.' && p[1] == '.') {
                        if (--depth < 0)
                                return false;
                } else if (l > 0 && !(l == 1 && p[0] == '.'))
                        depth++;
                p = *e ? e + 1 : e;
        }
        return true;
}

static void archive_read_freep(struct archive **a) {
        if (*a)
                archive_read_free(*a);
}
static void archive_write_freep(struct archive **a) {
        if (*a)
                archive_write_free(*a);
}

static int copy_data(struct archive *in, struct archive *out, const char *name, char *err, size_t errlen) {
        const void *buf;
        size_t size;
        la_int64_t off;
        for (;;) {
                int r = archive_read_data_block(in, &buf, &size, &off);
                if (r == ARCHIVE_EOF)
                        return 0;
                if (r < ARCHIVE_WARN) {
                        snprintf(err, errlen, "archive entry '%s' is corrupt: %s", name, archive_error_string(in));
                        return -EBADMSG;
                }
                if (archive_write_data_block(out, buf, size, off) < ARCHIVE_WARN) {
                        int e = archive_errno(out);
                        snprintf(err, errlen, "cannot write '%s': %s", name,
                                 e == ENOSPC ? "no space left on device (disk full)" : archive_error_string(out));
                        return e == ENOSPC ? -ENOSPC : -EIO;
                }
        }
}

int archive_extract(const char *file, const char *dir, char *err, size_t errlen) {
        _cleanup_(archive_read_freep) struct archive *in = archive_read_new();
        _cleanup_(archive_write_freep) struct archive *out = archive_write_disk_new();
        if (!in || !out)
                return -ENOMEM;
        archive_read_support_format_all(in);
        archive_read_support_filter_all(in);
        archive_write_disk_set_options(out, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                    ARCHIVE_EXTRACT_SECURE_NODOTDOT);
        if (archive_read_open_filename(in, file, 1 << 16) != ARCHIVE_OK) {
                snprintf(err, errlen, "cannot open archive %s: %s", file, archive_error_string(in));
                return -EBADMSG;
        }
        size_t n = 0;
        for (;;) {
                struct archive_entry *e;
                int r = archive_read_next_header(in, &e);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_WARN) {
                        snprintf(err, errlen, "archive %s is corrupt: %s", file, archive_error_string(in));
                        return -EBADMSG;
                }
                if (++n > ARCHIVE_MAX_ENTRIES) {
                        snprintf(err, errlen, "archive %s has more than %d entries", file, ARCHIVE_MAX_ENTRIES);
                        return -E2BIG;
                }
                const char *raw = archive_entry_pathname(e);
                if (!raw || raw[0] == '/' || !archive_path_safe(skip_dot_slash(raw))) {
                        if (raw && (!strcmp(raw, ".") || !strcmp(raw, "./")))
                                continue;
                        snprintf(err, errlen, "refusing archive entry '%s': %s", raw ? raw : "(no name)",
                                 raw && raw[0] == '/' ? "absolute path" : "it would land outside the workdir ('..')");
                        return -EINVAL;
                }
                /* a copy: the entry's own string is freed when its pathname is rewritten below */
                char name[4096];
                if ((size_t)snprintf(name, sizeof name, "%s", skip_dot_slash(raw)) >= sizeof name) {
                        snprintf(err, errlen, "refusing archive entry: path longer than %zu bytes", sizeof name - 1);
                        return -ENAMETOOLONG;
                }
                const char *sym = archive_entry_symlink(e);
                if (sym && !archive_symlink_safe(name, sym)) {
                        snprintf(err, errlen, "refusing archive entry '%s': symlink to '%s' escapes the workdir", name,
                                 sym);
                        return -EINVAL;
                }
                const char *hard = archive_entry_hardlink(e);
                _cleanup_free_ char *hardfull = NULL;
                if (hard) {
                        const char *h = skip_dot_slash(hard);
                        if (!archive_path_safe(h)) {
                                snprintf(err, errlen, "refusing archive entry '%s': hard link to '%s' escapes the workdir",
                                         name, hard);
                                return -EINVAL;
                        }
                        size_t l = strlen(dir) + strlen(h) + 2;
                        hardfull = malloc(l);
                        if (!hardfull)
                                return -ENOMEM;
                        snprintf(hardfull, l, "%s/%s", dir, h);
                        archive_entry_set_hardlink(e, hardfull);
                }
                mode_t type = archive_entry_filetype(e);
                if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
                        snprintf(err, errlen, "refusing archive entry '%s': not a file, directory or link", name);
                        return -EINVAL;
                }
                size_t l = strlen(dir) + strlen(name) + 2;
                _cleanup_free_ char *full = malloc(l);
                if (!full)
                        return -ENOMEM;
                snprintf(full, l, "%s/%s", dir, name);
                archive_entry_set_pathname(e, full);
                /* never setuid/setgid bits from an archive */
                archive_entry_set_perm(e, archive_entry_perm(e) & 0777);
                r = archive_write_header(out, e);
                if (r < ARCHIVE_WARN) {
                        int en = archive_errno(out);
                        snprintf(err, errlen, "cannot extract '%s': %s", name,
                                 en == ENOSPC ? "no space left on device (disk full)" : archive_error_string(out));
                        return en == ENOSPC ? -ENOSPC : -EIO;
                }
                if (archive_entry_size(e) > 0 && type == AE_IFREG) {
                        int cr = copy_data(in, out, name, err, errlen);
                        if (cr < 0)
                                return cr;
                }
                if (archive_write_finish_entry(out) < ARCHIVE_WARN) {
                        int en = archive_errno(out);
                        snprintf(err, errlen, "cannot finish '%s': %s", name,
                                 en == ENOSPC ? "no space left on device (disk full)" : archive_error_string(out));
                        return en == ENOSPC ? -ENOSPC : -EIO;
                }
        }
        if (archive_write_close(out) != ARCHIVE_OK) {
                snprintf(err, errlen, "cannot finish extracting into %s: %s", dir, archive_error_string(out));
                return -EIO;
        }
        return 0;
}

static int pack_walk(struct archive *a, const char *root, const char *rel, int depth, char *err, size_t errlen) {
        char path[8192];
        snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
        if (depth > 64)
                return -ELOOP;
        DIR *d = opendir(path);
        if (!d) {
                snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
                return -errno;
        }
        int r = 0;
        struct dirent *de;
        while (r == 0 && (de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                char sub[4096], full[8192];
                snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
                snprintf(full, sizeof full, "%s/%s", root, sub);
                struct stat st;
                if (lstat(full, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
                        continue;
                struct archive_entry *e = archive_entry_new();
                archive_entry_copy_stat(e, &st);
                archive_entry_set_pathname(e, sub);
                archive_entry_set_uid(e, 0);
                archive_entry_set_gid(e, 0);
                if (archive_write_header(a, e) != ARCHIVE_OK) {
                        snprintf(err, errlen, "cannot pack %s: %s", full, archive_error_string(a));
                        r = -EIO;
                } else if (S_ISREG(st.st_mode)) {
                        int fd = open(full, O_RDONLY | O_CLOEXEC);
                        char buf[65536];
                        ssize_t n;
                        if (fd < 0)
                                r = -errno;
                        while (fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0)
                                if (archive_write_data(a, buf, (size_t)n) < 0) {
                                        r = -EIO;
                                        break;
                                }
                        if (fd >= 0)
                                close(fd);
                        if (r < 0)
                                snprintf(err, errlen, "cannot pack %s", full);
                }
                archive_entry_free(e);
                if (r == 0 && S_ISDIR(st.st_mode))
                        r = pack_walk(a, root, sub, depth + 1, err, errlen);
        }
        closedir(d);
        return r;
}

int archive_pack_dir(const char *dir, const char *out, char *err, size_t errlen) {
        _cleanup_(archive_write_freep) struct archive *a = archive_write_new();
        if (!a)
                return -ENOMEM;
        archive_write_add_filter_gzip(a);
        archive_write_set_format_pax_restricted(a);
        if (archive_write_open_filename(a, out) != ARCHIVE_OK) {
                snprintf(err, errlen, "cannot create %s: %s", out, archive_error_string(a));
                return -EIO;
        }
        int r = pack_walk(a, dir, "", 0, err, errlen);
        if (archive_write_close(a) != ARCHIVE_OK && r == 0) {
                snprintf(err, errlen, "cannot finish %s: %s", out, archive_error_string(a));
                r = -EIO;
        }
        return r;
}
