/* outpath.c — see outpath.h. */
#include "cli/outpath.h"

#include "dstore/manifest.h"
#include "util/error.h"
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum { IN_FILE, IN_FOLDER, IN_DSTORE, OUT_FILE, OUT_DSTORE } EntryKind;

typedef struct {
    EntryKind kind;
    const char *flag;
    const char *path;
    const char *marker;
    const char *marker_file;
    char *owned[2];            /* strings this entry allocated (derived paths), freed with the plan */
} Entry;

struct OutPlan {
    int force;
    Entry *e;
    int n, cap;
};

/* The files a datastore folder holds (dstore/build.c, dstore/dstore.c): never an output of another command. */
static const char *const dstore_files[] = {"keys.npy", "vals.npy", "tokens.npy", "manifest.json", "build.json", NULL};

int outplan_create(OutPlan **plan, int force) {
    *plan = calloc(1, sizeof **plan);
    if (!*plan) return kn_error(KN_ENOMEM, "out of memory");
    (*plan)->force = force;
    return KN_OK;
}

void outplan_free(OutPlan *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) free(p->e[i].owned[0]), free(p->e[i].owned[1]);
    free(p->e);
    free(p);
}

static Entry *add(OutPlan *p, EntryKind kind, const char *flag, const char *path) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        Entry *e = realloc(p->e, (size_t)cap * sizeof *e);
        if (!e) return NULL;
        p->e = e;
        p->cap = cap;
    }
    Entry *e = &p->e[p->n++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->flag = flag;
    e->path = path;
    return e;
}

/* path + suffix in a fresh string owned by e (slot). */
static const char *derived(Entry *e, int slot, const char *path, const char *suffix) {
    size_t n = strlen(path) + strlen(suffix) + 1;
    e->owned[slot] = malloc(n);
    if (e->owned[slot]) snprintf(e->owned[slot], n, "%s%s", path, suffix);
    return e->owned[slot];
}

int outplan_input(OutPlan *p, const char *flag, const char *path) {
    if (path && !add(p, IN_FILE, flag, path)) return kn_error(KN_ENOMEM, "out of memory");
    return KN_OK;
}

int outplan_input_folder(OutPlan *p, const char *flag, const char *dir) {
    if (dir && !add(p, IN_FOLDER, flag, dir)) return kn_error(KN_ENOMEM, "out of memory");
    return KN_OK;
}

int outplan_input_dstore(OutPlan *p, const char *flag, const char *dir) {
    if (!dir) return KN_OK;
    if (!add(p, IN_DSTORE, flag, dir)) return kn_error(KN_ENOMEM, "out of memory");
    /* A linked merge keeps its keys in the shard folders: they are inputs too. A manifest that cannot be read
     * is left to the command, which reports it in its own words. */
    char path[PATH_MAX];
    DstoreManifest m;
    if (path_join(path, sizeof path, dir, "manifest.json") != KN_OK || !file_exists(path) || manifest_read(&m, path) != KN_OK) return KN_OK;
    int rc = KN_OK;
    for (int i = 0; rc == KN_OK && i < m.nparts; i++) {
        Entry *e = add(p, IN_DSTORE, flag, NULL);
        if (!e || !(e->path = derived(e, 0, m.parts[i].path, ""))) rc = kn_error(KN_ENOMEM, "out of memory");
    }
    manifest_free(&m);
    return rc;
}

int outplan_input_index(OutPlan *p, const char *flag, const char *path) {
    if (!path) return KN_OK;
    const char *suffix[3] = {"", ".meta.json", ".ivfdata"};
    for (int i = 0; i < 3; i++) {
        Entry *e = add(p, IN_FILE, flag, NULL);
        if (!e || !(e->path = derived(e, 0, path, suffix[i]))) return kn_error(KN_ENOMEM, "out of memory");
    }
    return KN_OK;
}

int outplan_output(OutPlan *p, const char *flag, const char *path, const char *marker, const char *marker_file) {
    if (!path) return KN_OK;
    Entry *e = add(p, OUT_FILE, flag, path);
    if (!e) return kn_error(KN_ENOMEM, "out of memory");
    e->marker = marker;
    e->marker_file = marker_file;
    return KN_OK;
}

int outplan_output_index(OutPlan *p, const char *flag, const char *path, int ondisk) {
    if (!path) return KN_OK;
    /* The sidecar says "knnlm-index": an index built before, by any knnlm command, may be rebuilt in place. */
    Entry *meta = add(p, OUT_FILE, flag, NULL);
    const char *meta_path = meta ? derived(meta, 0, path, ".meta.json") : NULL;
    if (!meta_path) return kn_error(KN_ENOMEM, "out of memory");
    meta->path = meta_path;
    meta->marker = OUT_MARK_INDEX_META;
    int rc = outplan_output(p, flag, path, OUT_MARK_INDEX_META, meta_path); /* (meta may have moved: add() reallocates) */
    if (rc == KN_OK && ondisk) {
        Entry *ivf = add(p, OUT_FILE, flag, NULL);
        if (!ivf || !(ivf->path = derived(ivf, 0, path, ".ivfdata"))) return kn_error(KN_ENOMEM, "out of memory");
        ivf->marker = OUT_MARK_INDEX_META;
        ivf->marker_file = meta_path;
    }
    return rc;
}

int outplan_output_dstore(OutPlan *p, const char *flag, const char *dir) {
    if (dir && !add(p, OUT_DSTORE, flag, dir)) return kn_error(KN_ENOMEM, "out of memory");
    return KN_OK;
}

/* ---- checking ---- */

/* A path as the file system sees it: absolute, with every symbolic link and ".." resolved. */
typedef struct {
    char real[PATH_MAX];
    int exists;
    struct stat st;
} Resolved;

/* The folder part of path ("." when there is none) and its last component. */
static void split(const char *path, char *dir, size_t cap, const char **base) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, cap, ".");
        *base = path;
    } else {
        snprintf(dir, cap, "%.*s", slash == path ? 1 : (int)(slash - path), path);
        *base = slash + 1;
    }
}

/* Resolves path. An existing one is realpath()'d (a symbolic link to nowhere is an error); a new one is its
 * resolved folder + its name. Errors name flag and path. */
static int resolve(const char *flag, const char *path, Resolved *r) {
    memset(r, 0, sizeof *r);
    struct stat lst;
    if (lstat(path, &lst) == 0) {
        if (!realpath(path, r->real)) {
            if (S_ISLNK(lst.st_mode)) return kn_error(KN_EINVAL, "%s %s: is a symbolic link to a file that does not exist", flag, path);
            return kn_error_errno("%s %s: cannot resolve", flag, path);
        }
        if (stat(r->real, &r->st) != 0) return kn_error_errno("%s %s: cannot stat", flag, path);
        r->exists = 1;
        return KN_OK;
    }
    if (errno != ENOENT) return kn_error_errno("%s %s", flag, path);
    char dir[PATH_MAX], rdir[PATH_MAX];
    const char *base;
    split(path, dir, sizeof dir, &base);
    if (*base == '\0' || !strcmp(base, ".") || !strcmp(base, "..")) return kn_error(KN_EINVAL, "%s %s: not a file name", flag, path);
    if (!realpath(dir, rdir)) {
        if (errno == ENOENT) return kn_error(KN_ENOTFOUND, "%s %s: the folder %s does not exist", flag, path, dir);
        if (errno == ENOTDIR) return kn_error(KN_EINVAL, "%s %s: %s is not a folder", flag, path, dir);
        return kn_error_errno("%s %s: cannot resolve the folder %s", flag, path, dir);
    }
    int n = snprintf(r->real, sizeof r->real, "%s/%s", strcmp(rdir, "/") ? rdir : "", base);
    if (n < 0 || (size_t)n >= sizeof r->real) return kn_error(KN_EINVAL, "%s %s: path too long", flag, path);
    return KN_OK;
}

static int same_file(const Resolved *a, const Resolved *b) {
    if (!strcmp(a->real, b->real)) return 1;
    return a->exists && b->exists && a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino; /* hard links */
}

/* The path of `file` relative to `folder` when it lies inside it, else NULL. */
static const char *inside(const char *file, const char *folder) {
    size_t n = strlen(folder);
    if (n == 1 && folder[0] == '/') return file + 1;
    return strncmp(file, folder, n) == 0 && file[n] == '/' ? file + n + 1 : NULL;
}

/* 1 if the first 4 KiB of file hold marker: the file is what this output wrote before. */
static int has_marker(const char *file, const char *marker) {
    if (!marker || !file) return 0;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[4097];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    return memmem(buf, (size_t)n, marker, strlen(marker)) != NULL;
}

static int is_dstore_file(const char *rel) {
    for (const char *const *f = dstore_files; *f; f++)
        if (!strcmp(rel, *f)) return 1;
    return 0;
}

static int check_output_file(const OutPlan *p, const Entry *o, const Resolved *r, const Resolved *res) {
    const char *flag = o->flag, *path = o->path;
    if (r->exists && S_ISDIR(r->st.st_mode)) return kn_error(KN_EINVAL, "%s %s: is a folder; give a file name", flag, path);
    if (r->exists && !S_ISREG(r->st.st_mode))
        return kn_error(KN_EINVAL, "%s %s: exists and is not a regular file (a device, pipe or socket); give a file name", flag, path);
    /* The temporary is made, and renamed, in the folder of the path as given (a symbolic link is replaced,
     * its target left alone), so that is the folder that must be writable. */
    char dir[PATH_MAX];
    const char *base;
    split(path, dir, sizeof dir, &base);
    if (access(dir, W_OK | X_OK) != 0) return kn_error_errno("%s %s: cannot write in the folder %s", flag, path, dir);
    int ours = r->exists && has_marker(o->marker_file ? o->marker_file : r->real, o->marker);
    for (int i = 0; i < p->n; i++)
        if (p->e[i].kind == IN_FILE && res[i].real[0] && same_file(r, &res[i]))
            return kn_error(KN_EINVAL, "%s %s: is the same file as %s %s (an input); nothing was written", flag, path, p->e[i].flag, p->e[i].path);
    for (int i = 0; i < p->n; i++) {
        const Entry *in = &p->e[i];
        const Resolved *ri = &res[i];
        if ((in->kind == IN_FOLDER || in->kind == IN_DSTORE) && ri->real[0]) {
            const char *rel = inside(r->real, ri->real);
            if (!rel) continue;
            if (in->kind == IN_DSTORE && is_dstore_file(rel))
                return kn_error(KN_EINVAL, "%s %s: is the datastore's own %s (%s %s); nothing was written", flag, path, rel, in->flag, in->path);
            if (r->exists && !ours)
                return kn_error(KN_EINVAL, "%s %s: is a file of the folder %s %s (an input), not one this option wrote; nothing was written", flag,
                                path, in->flag, in->path);
        }
    }
    for (const Entry *q = p->e; q < o; q++) {
        const Resolved *rq = &res[q - p->e];
        if (q->kind == OUT_FILE && same_file(r, rq))
            return kn_error(KN_EINVAL, "%s %s: is the same file as %s %s; give the outputs different paths", flag, path, q->flag, q->path);
    }
    if (r->exists && !ours && !p->force)
        return kn_error(KN_EINVAL, "%s %s: exists%s; add --force to replace it", flag, path,
                        o->marker ? " and is not a file this option wrote" : "");
    return KN_OK;
}

static int check_output_dstore(const OutPlan *p, const Entry *o, const Resolved *r, const Resolved *res) {
    const char *flag = o->flag, *path = o->path;
    if (!r->exists) return KN_OK; /* a new folder (made with its parents) */
    if (!S_ISDIR(r->st.st_mode)) return kn_error(KN_EINVAL, "%s %s: exists and is not a folder", flag, path);
    for (int i = 0; i < p->n; i++) {
        const Entry *in = &p->e[i];
        const Resolved *ri = &res[i];
        if (!ri->real[0]) continue;
        if ((in->kind == IN_FOLDER || in->kind == IN_DSTORE) && !strcmp(r->real, ri->real))
            return kn_error(KN_EINVAL, "%s %s: is the folder %s %s (an input); nothing was written", flag, path, in->flag, in->path);
        const char *rel = in->kind == IN_FILE ? inside(ri->real, r->real) : NULL;
        if (rel && is_dstore_file(rel))
            return kn_error(KN_EINVAL, "%s %s: would replace its %s, which is %s %s (an input); nothing was written", flag, path, rel, in->flag, in->path);
    }
    /* A folder that is not a datastore (no manifest.json, no build.json) and yet holds a datastore's data
     * files holds someone else's: the build would replace them. */
    char f[PATH_MAX];
    if ((path_join(f, sizeof f, r->real, "manifest.json") == KN_OK && file_exists(f)) ||
        (path_join(f, sizeof f, r->real, "build.json") == KN_OK && file_exists(f)))
        return KN_OK;
    for (const char *const *name = dstore_files; *name; name++)
        if (path_join(f, sizeof f, r->real, *name) == KN_OK && file_exists(f))
            return kn_error(KN_EINVAL, "%s %s: holds %s but is not a datastore; choose a new or empty folder", flag, path, *name);
    return KN_OK;
}

int outplan_check(const OutPlan *p) {
    Resolved *res = calloc((size_t)(p->n ? p->n : 1), sizeof *res);
    if (!res) return kn_error(KN_ENOMEM, "out of memory");
    int rc = KN_OK;
    /* Inputs that do not exist (yet) are the command's to report: they resolve to nothing and match nothing. */
    for (int i = 0; i < p->n; i++) {
        const Entry *e = &p->e[i];
        if (e->kind == OUT_FILE || e->kind == OUT_DSTORE) continue;
        if (!realpath(e->path, res[i].real)) res[i].real[0] = '\0';
        else if (stat(res[i].real, &res[i].st) == 0) res[i].exists = 1;
    }
    for (int i = 0; rc == KN_OK && i < p->n; i++) {
        const Entry *e = &p->e[i];
        if (e->kind == OUT_FILE) {
            if (!*e->path) rc = kn_error(KN_EINVAL, "%s: an empty path", e->flag);
            if (rc == KN_OK) rc = resolve(e->flag, e->path, &res[i]);
            if (rc == KN_OK) rc = check_output_file(p, e, &res[i], res);
        } else if (e->kind == OUT_DSTORE) {
            if (!*e->path) rc = kn_error(KN_EINVAL, "%s: an empty path", e->flag);
            if (rc == KN_OK && realpath(e->path, res[i].real) && stat(res[i].real, &res[i].st) == 0) res[i].exists = 1;
            if (rc == KN_OK) rc = check_output_dstore(p, e, &res[i], res);
        }
    }
    free(res);
    return rc;
}
