/* SPDX-License-Identifier: Apache-2.0 */
/* archive_x.c — libarchive extraction with path checks before anything touches the disk. */
#include "run/proc/archive_x.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
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

#define LINK_MAX_HOPS 40   /* the kernel's own limit on links followed in one resolution */

/* Appends "/comp" (or "comp") to a path of at most n - 1 bytes; false when it does not fit. */
static bool push_comp(char *cur, size_t n, const char *comp, size_t l) {
        size_t cl = strlen(cur);
        if (cl + (cl ? 1 : 0) + l >= n)
                return false;
        if (cl)
                cur[cl++] = '/';
        memcpy(cur + cl, comp, l);
        cur[cl + l] = 0;
        return true;
}

static void pop_comp(char *cur) {
        char *s = strrchr(cur, '/');
        if (s)
                *s = 0;
        else
                cur[0] = 0;
}

bool archive_link_inside(const char *path, const char *target, archive_readlink_fn rl, void *ud) {
        if (!archive_path_safe(path) || !target || !*target || target[0] == '/')
                return false;
        /* the link's directory, component by component ('.' and empty ones dropped: archive_path_safe allows them) */
        char cur[PATH_MAX] = "";
        const char *slash = strrchr(path, '/');
        for (const char *p = path; slash && p < slash;) {
                const char *e = strchrnul(p, '/');
                size_t l = (size_t)(e - p);
                if (l && !(l == 1 && p[0] == '.') && !push_comp(cur, sizeof cur, p, l))
                        return false;
                p = e + 1;
        }
        /* what is left to walk: the target, then (after each link met) that link's target in front */
        _cleanup_free_ char *rest = strdup(target);
        if (!rest)
                return false;
        int hops = 0;
        for (const char *p = rest; *p;) {
                const char *e = strchrnul(p, '/');
                size_t l = (size_t)(e - p);
                const char *next = *e ? e + 1 : e;
                if (l == 0 || (l == 1 && p[0] == '.')) {
                        p = next;
                        continue;
                }
                if (l == 2 && p[0] == '.' && p[1] == '.') {
                        if (!cur[0])
                                return false; /* above the root */
                        pop_comp(cur);
                        p = next;
                        continue;
                }
                if (!push_comp(cur, sizeof cur, p, l))
                        return false;
                char link[PATH_MAX];
                int n = rl ? rl(ud, cur, link, sizeof link) : -EINVAL;
                if (n == -EINVAL || n == -ENOENT) {
                        p = next;
                        continue; /* not a link (or not there yet): a plain component */
                }
                if (n < 0 || ++hops > LINK_MAX_HOPS || link[0] == '/' || !link[0])
                        return false;
                pop_comp(cur);
                size_t rl_len = strlen(next);
                char *nr = malloc((size_t)n + 1 + rl_len + 1);
                if (!nr)
                        return false;
                snprintf(nr, (size_t)n + 1 + rl_len + 1, "%s%s%s", link, rl_len ? "/" : "", next);
                free(rest);
                rest = nr;
                p = rest;
        }
        return true;
}

bool archive_symlink_safe(const char *path, const char *target) {
        return archive_link_inside(path, target, NULL, NULL);
}

/* The tree on disk, beneath rootfd, as archive_link_inside asks for it. */
static int disk_readlink(void *ud, const char *path, char *buf, size_t n) {
        int rootfd = *(int *)ud;
        struct stat st;
        if (fstatat(rootfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOTDIR || errno == ENOENT ? -ENOENT : -errno;
        if (!S_ISLNK(st.st_mode))
                return -EINVAL;
        ssize_t l = readlinkat(rootfd, path, buf, n);
        if (l < 0)
                return -errno;
        if ((size_t)l >= n)
                return -ENAMETOOLONG;
        buf[l] = 0;
        return (int)l;
}

/* The first directory of path that is a link already in the tree, copied to dst; false when there is none. */
static bool through_link(int rootfd, const char *path, char *dst, size_t n) {
        char link[PATH_MAX];
        for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
                snprintf(dst, n, "%.*s", (int)(s - path), path);
                int fd = rootfd;
                if (disk_readlink(&fd, dst, link, sizeof link) >= 0)
                        return true;
        }
        return false;
}

static void archive_read_freep(struct archive **a) {
        if (*a)
                archive_read_free(*a);
}
static void archive_write_freep(struct archive **a) {
        if (*a)
                archive_write_free(*a);
}

/* The names of the links extracted, checked again once the whole tree is there (a later link can change where
 * an earlier one leads). */
struct links {
        char **v;
        size_t n, alloc;
};

static int links_add(struct links *l, const char *name) {
        char **v = array_room(l->v, l->n, &l->alloc, sizeof *v, 16);
        if (!v)
                return -ENOMEM;
        l->v = v;
        return (l->v[l->n] = strdup(name)) ? (l->n++, 0) : -ENOMEM;
}

static void links_free(struct links *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
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

/* Why an entry may not be extracted (NULL: it may). name is the entry's path without leading "./". */
static const char *refusal(int rootfd, struct archive_entry *e, const char *name, char *why, size_t n) {
        mode_t type = archive_entry_filetype(e);
        if (archive_entry_hardlink(e))
                return "a hard link (refused: a hard link can name a file outside the workdir)";
        if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
                return "not a file, directory or symbolic link (device nodes, FIFOs and sockets are refused)";
        if (archive_entry_perm(e) & (S_ISUID | S_ISGID))
                return "setuid or setgid (refused)";
        char dir[PATH_MAX];
        if (through_link(rootfd, name, dir, sizeof dir)) {
                snprintf(why, n, "its path goes through the symbolic link '%s'", dir);
                return why;
        }
        const char *sym = archive_entry_symlink(e);
        if (type == AE_IFLNK || sym) {
                int fd = rootfd;
                if (!sym || !archive_link_inside(name, sym, disk_readlink, &fd)) {
                        snprintf(why, n, "symlink to '%s' escapes the workdir", sym ? sym : "");
                        return why;
                }
        }
        return NULL;
}

static bool same_dir(int a, const char *b) {
        struct stat sa, sb;
        return fstat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int extract_entries(struct archive *in, struct archive *out, int rootfd, struct links *links, char *err,
                           size_t errlen) {
        for (size_t n = 0;;) {
                struct archive_entry *e;
                int r = archive_read_next_header(in, &e);
                if (r == ARCHIVE_EOF)
                        return 0;
                if (r < ARCHIVE_WARN) {
                        snprintf(err, errlen, "the archive is corrupt: %s", archive_error_string(in));
                        return -EBADMSG;
                }
                if (++n > ARCHIVE_MAX_ENTRIES) {
                        snprintf(err, errlen, "the archive has more than %d entries", ARCHIVE_MAX_ENTRIES);
                        return -E2BIG;
                }
                const char *raw = archive_entry_pathname(e);
                if (raw && (!strcmp(raw, ".") || !strcmp(raw, "./")))
                        continue;
                if (!raw || raw[0] == '/' || !archive_path_safe(skip_dot_slash(raw))) {
                        snprintf(err, errlen, "refusing archive entry '%s': %s", raw ? raw : "(no name)",
                                 raw && raw[0] == '/' ? "absolute path" : "it would land outside the workdir ('..')");
                        return -EINVAL;
                }
                /* a copy: the entry's own string is freed when its pathname is rewritten below */
                char name[PATH_MAX];
                if ((size_t)snprintf(name, sizeof name, "%s", skip_dot_slash(raw)) >= sizeof name) {
                        snprintf(err, errlen, "refusing archive entry: path longer than %zu bytes", sizeof name - 1);
                        return -ENAMETOOLONG;
                }
                size_t nl = strlen(name);
                while (nl > 1 && name[nl - 1] == '/')
                        name[--nl] = 0;
                char why[PATH_MAX + 64];
                const char *no = refusal(rootfd, e, name, why, sizeof why);
                if (no) {
                        snprintf(err, errlen, "refusing archive entry '%s': %s", name, no);
                        return -EINVAL;
                }
                archive_entry_set_pathname(e, name);
                archive_entry_set_perm(e, archive_entry_perm(e) & 0777);
                r = archive_write_header(out, e);
                if (r < ARCHIVE_WARN) {
                        int en = archive_errno(out);
                        snprintf(err, errlen, "cannot extract '%s': %s", name,
                                 en == ENOSPC ? "no space left on device (disk full)" : archive_error_string(out));
                        return en == ENOSPC ? -ENOSPC : -EIO;
                }
                mode_t type = archive_entry_filetype(e);
                if (type == AE_IFLNK && links_add(links, name) < 0)
                        return -ENOMEM;
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
}

int archive_extract(int afd, int rootfd, char *err, size_t errlen) {
        if (!same_dir(rootfd, ".")) {
                snprintf(err, errlen, "extracting: the working directory is not the workdir");
                return -EINVAL;
        }
        _cleanup_(archive_read_freep) struct archive *in = archive_read_new();
        _cleanup_(archive_write_freep) struct archive *out = archive_write_disk_new();
        if (!in || !out)
                return -ENOMEM;
        archive_read_support_format_all(in);
        archive_read_support_filter_all(in);
        /* the checks above are the rule; libarchive's own are a second layer */
        archive_write_disk_set_options(out, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                    ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                    ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
        if (archive_read_open_fd(in, afd, 1 << 16) != ARCHIVE_OK) {
                snprintf(err, errlen, "cannot open the archive: %s", archive_error_string(in));
                return -EBADMSG;
        }
        struct links links = { 0 };
        int r = extract_entries(in, out, rootfd, &links, err, errlen);
        if (r == 0 && archive_write_close(out) != ARCHIVE_OK) {
                snprintf(err, errlen, "cannot finish extracting: %s", archive_error_string(out));
                r = -EIO;
        }
        for (size_t i = 0; r == 0 && i < links.n; i++) {
                char target[PATH_MAX];
                int fd = rootfd;
                int n = disk_readlink(&fd, links.v[i], target, sizeof target);
                if (n >= 0 && archive_link_inside(links.v[i], target, disk_readlink, &fd))
                        continue;
                snprintf(err, errlen, "refusing archive entry '%s': symlink to '%s' escapes the workdir through "
                         "the links the archive made", links.v[i], n >= 0 ? target : "?");
                r = -EINVAL;
        }
        links_free(&links);
        return r;
}
