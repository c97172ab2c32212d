/* SPDX-License-Identifier: Apache-2.0 */
/* pack.c — a local source folder packed and named by its tree (pack.h). */
#include "cmd/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "util.h"

void pack_ignore_parse(const char *text, struct pack_ignore *ig) {
        ig->n = 0;
        for (const char *line = text; line && *line && ig->n < PACK_MAX_PATTERNS;) {
                const char *end = strchr(line, '\n');
                size_t len = end ? (size_t)(end - line) : strlen(line);
                char buf[256];
                snprintf(buf, sizeof buf, "%.*s", (int)MIN(len, sizeof buf - 1), line);
                line = end ? end + 1 : NULL;
                size_t l = strlen(buf);
                while (l && (buf[l - 1] == '\r' || buf[l - 1] == ' ' || buf[l - 1] == '\t'))
                        buf[--l] = 0;
                if (!l || buf[0] == '#')
                        continue;
                char *p = buf;
                bool neg = false, dir_only = false;
                if (*p == '!')
                        neg = true, p++;
                if (l && buf[l - 1] == '/')
                        dir_only = true, buf[--l] = 0;
                bool anchored = strchr(p, '/') != NULL;
                while (*p == '/')
                        p++;
                if (!*p)
                        continue;
                snprintf(ig->p[ig->n].pat, sizeof ig->p[0].pat, "%s", p);
                ig->p[ig->n].negate = neg;
                ig->p[ig->n].dir_only = dir_only;
                ig->p[ig->n++].anchored = anchored;
        }
}

/* One pattern against rel: "**" spans folders (fnmatch without FNM_PATHNAME), else '*' stays within one. */
static bool match_one(const char *pat, bool anchored, const char *rel) {
        int flags = strstr(pat, "**") ? 0 : FNM_PATHNAME;
        if (anchored) {
                if (!strncmp(pat, "**/", 3) && fnmatch(pat + 3, rel, flags) == 0)
                        return true; /* "**" also stands for no folder at all */
                return fnmatch(pat, rel, flags) == 0;
        }
        const char *base = strrchr(rel, '/');
        return fnmatch(pat, base ? base + 1 : rel, flags) == 0;
}

bool pack_ignored(const struct pack_ignore *ig, const char *rel, bool is_dir) {
        if (!strcmp(rel, ".git") || !strncmp(rel, ".git/", 5))
                return true;
        bool out = false;
        for (size_t i = 0; i < ig->n; i++) {
                if (ig->p[i].dir_only && !is_dir)
                        continue;
                if (match_one(ig->p[i].pat, ig->p[i].anchored, rel))
                        out = !ig->p[i].negate;
        }
        return out;
}

/* ---------- the tree, in name order ---------- */

struct entry {
        char *rel;
        struct stat st;
};

struct tree {
        struct entry *e;
        size_t n, alloc;
        struct pack_ignore ig;
};

static int cmp_entry(const void *a, const void *b) {
        return strcmp(((const struct entry *)a)->rel, ((const struct entry *)b)->rel);
}

static void tree_free(struct tree *t) {
        for (size_t i = 0; i < t->n; i++)
                free(t->e[i].rel);
        free(t->e);
        free(t);
}

static int walk(struct tree *t, const char *root, const char *rel, int depth, char *err, size_t errlen) {
        char path[8192];
        if (depth > 64 || pathf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel) < 0)
                return -ELOOP;
        DIR *d = opendir(path);
        if (!d) {
                errf(err, errlen, "cannot read %s: %s", path, strerror(errno));
                return -errno;
        }
        int r = 0;
        for (struct dirent *de; r == 0 && (de = readdir(d));) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                char sub[4096], full[8192];
                struct stat st;
                if (pathf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name) < 0 ||
                    pathf(full, sizeof full, "%s/%s", root, sub) < 0 || lstat(full, &st) < 0 ||
                    !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) || pack_ignored(&t->ig, sub, S_ISDIR(st.st_mode)))
                        continue; /* links, devices and what is ignored stay behind */
                if (t->n >= PACK_MAX_FILES) {
                        errf(err, errlen, "%s holds more than %d files: a source folder is code, not data (list the "
                             "rest in .mayflyignore)", root, PACK_MAX_FILES);
                        r = -E2BIG;
                        break;
                }
                struct entry *e = array_room(t->e, t->n, &t->alloc, sizeof *t->e, 64);
                if (!e) {
                        r = -ENOMEM;
                        break;
                }
                t->e = e;
                t->e[t->n] = (struct entry){ .rel = strdup(sub), .st = st };
                if (!t->e[t->n++].rel)
                        r = -ENOMEM;
                if (r == 0 && S_ISDIR(st.st_mode))
                        r = walk(t, root, sub, depth + 1, err, errlen);
        }
        closedir(d);
        return r;
}

static int tree_of(const char *dir, struct tree **ret, char *err, size_t errlen) {
        struct tree *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        char ip[4200];
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        if (pathf(ip, sizeof ip, "%s/.mayflyignore", dir) == 0 && read_file_capped(ip, 65536, &text, &len) == 0)
                pack_ignore_parse(text, &t->ig);
        int r = walk(t, dir, "", 0, err, errlen);
        if (r < 0) {
                tree_free(t);
                return r;
        }
        qsort(t->e, t->n, sizeof *t->e, cmp_entry);
        *ret = t;
        return 0;
}

int pack_hash(const char *dir, struct pack_tree *ret, char *err, size_t errlen) {
        struct tree *t = NULL;
        int r = tree_of(dir, &t, err, errlen);
        if (r < 0)
                return r;
        /* one line a path: "<d|x|f> <content sha256 or -> <path>"; the tree's hash is the hash of those lines */
        struct buf lines = BUF_INIT((size_t)PACK_MAX_FILES * 4200);
        *ret = (struct pack_tree){ 0 };
        for (size_t i = 0; r >= 0 && i < t->n; i++) {
                const struct entry *e = &t->e[i];
                char hex[65] = "-", line[4400];
                if (S_ISREG(e->st.st_mode)) {
                        char full[8200];
                        unsigned char md[32];
                        int fd = pathf(full, sizeof full, "%s/%s", dir, e->rel) < 0 ? -1
                                                                                    : open(full, O_RDONLY | O_CLOEXEC);
                        r = fd < 0 ? -errno : crypto_sha256_fd(fd, md);
                        if (fd >= 0)
                                close(fd);
                        if (r < 0) {
                                errf(err, errlen, "cannot read %s/%s: %s", dir, e->rel, strerror(-r));
                                break;
                        }
                        hex_encode(md, 32, hex);
                        ret->files++;
                        ret->bytes += (uint64_t)e->st.st_size;
                }
                char kind = S_ISDIR(e->st.st_mode) ? 'd' : (e->st.st_mode & 0111) ? 'x' : 'f';
                snprintf(line, sizeof line, "%c %s %s\n", kind, hex, e->rel);
                r = buf_adds(&lines, line);
        }
        if (r >= 0) {
                unsigned char md[32];
                crypto_sha256(lines.data ? lines.data : "", lines.len, md);
                hex_encode(md, 32, ret->hash);
                r = 0;
        }
        buf_free(&lines);
        tree_free(t);
        return r;
}

static void progress(size_t done, size_t total, uint64_t bytes) {
        fprintf(stderr, "\rpacking: %zu/%zu entries, %.1f MiB", done, total, (double)bytes / 1048576.0);
        if (done == total)
                fputc('\n', stderr);
}

static int add_file(struct archive *a, const char *full, char *err, size_t errlen) {
        int fd = open(full, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                errf(err, errlen, "cannot read %s: %s", full, strerror(errno));
                return -errno;
        }
        char buf[65536];
        int r = 0;
        for (ssize_t n; r == 0 && (n = read(fd, buf, sizeof buf)) > 0;)
                if (archive_write_data(a, buf, (size_t)n) < 0)
                        r = -EIO;
        close(fd);
        if (r < 0)
                errf(err, errlen, "cannot pack %s: %s", full, archive_error_string(a));
        return r;
}

int pack_write(const char *dir, const char *out, char *err, size_t errlen) {
        struct tree *t = NULL;
        int r = tree_of(dir, &t, err, errlen);
        if (r < 0)
                return r;
        struct archive *a = archive_write_new();
        if (!a) {
                tree_free(t);
                return -ENOMEM;
        }
        archive_write_add_filter_gzip(a);
        archive_write_set_format_pax_restricted(a);
        if (archive_write_open_filename(a, out) != ARCHIVE_OK) {
                errf(err, errlen, "cannot create %s: %s", out, archive_error_string(a));
                r = -EIO;
        }
        bool tty = isatty(2);
        uint64_t bytes = 0;
        for (size_t i = 0; r == 0 && i < t->n; i++) {
                const struct entry *e = &t->e[i];
                char full[8200];
                struct archive_entry *ae = archive_entry_new();
                archive_entry_copy_stat(ae, &e->st);
                archive_entry_set_pathname(ae, e->rel);
                archive_entry_set_uid(ae, 0);
                archive_entry_set_gid(ae, 0);
                if (archive_write_header(a, ae) != ARCHIVE_OK) {
                        errf(err, errlen, "cannot pack %s: %s", e->rel, archive_error_string(a));
                        r = -EIO;
                } else if (S_ISREG(e->st.st_mode))
                        r = pathf(full, sizeof full, "%s/%s", dir, e->rel) < 0 ? -ENAMETOOLONG
                                                                               : add_file(a, full, err, errlen);
                archive_entry_free(ae);
                bytes += S_ISREG(e->st.st_mode) ? (uint64_t)e->st.st_size : 0;
                if (tty && (i % 64 == 0 || i + 1 == t->n))
                        progress(i + 1, t->n, bytes);
        }
        if (archive_write_close(a) != ARCHIVE_OK && r == 0) {
                errf(err, errlen, "cannot finish %s: %s", out, archive_error_string(a));
                r = -EIO;
        }
        archive_write_free(a);
        tree_free(t);
        return r;
}
