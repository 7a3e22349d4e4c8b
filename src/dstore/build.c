/* build.c — see build.h. The folder's life: build.json (settings, entries_done = -1) -> tokens.npy ->
 * keys.npy + vals.npy preallocated (entries_done = 0) -> checkpoints -> manifest.json, build.json removed. */
#include "dstore/build.h"

#include "dstore/manifest.h"
#include "dstore/window.h"
#include "tokenizer/tokenizer.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/file.h"
#include "util/half.h"
#include "util/hash.h"
#include "util/version.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

void dstore_build_defaults(DstoreBuildOptions *o) {
    memset(o, 0, sizeof *o);
    o->corpus_format = CORPUS_AUTO;
    o->window = 1024;
    o->stride = 512;
    o->key = KEY_LAST_FFN_INPUT;
    o->dtype = NPY_F16;
    o->shard_count = 1;
    o->checkpoint_seconds = 60;
}

/* Everything one build holds open. */
typedef struct {
    const DstoreBuildOptions *opt;
    const KnMonitor *mon;
    Gpt2 *model;
    Tokenizer *tk;
    DstoreManifest man;          /* the wanted settings, then what the files hold */
    char build_path[PATH_MAX], manifest_path[PATH_MAX], tokens_path[PATH_MAX], keys_path[PATH_MAX], vals_path[PATH_MAX], lock_path[PATH_MAX];
    int lock_fd, tokens_fd, keys_fd;
    int64_t done;                /* entries whose keys are on disk (relative to entry_begin) */
    int64_t w_begin, w_end;      /* this shard's windows */
} Build;

static const char *format_name(CorpusFormat f) { return f == CORPUS_LINES ? "lines" : f == CORPUS_WIKIEXTRACTOR ? "wikiextractor" : "auto"; }

static int write_checkpoint(Build *b) { return manifest_write(&b->man, b->build_path, "entries_done", b->done); }

/* Fills the settings part of the manifest from the options, the model and the hashes of the inputs. */
static int wanted_settings(Build *b) {
    const DstoreBuildOptions *o = b->opt;
    DstoreManifest *m = &b->man;
    const Gpt2Config *c = gpt2_config(b->model);
    snprintf(m->model, sizeof m->model, "%s", o->model_dir);
    snprintf(m->key, sizeof m->key, "%s", gpt2_key_name(o->key));
    snprintf(m->precision, sizeof m->precision, "%s", o->precision == GPT2_BF16 ? "bf16" : "fp32");
    snprintf(m->corpus, sizeof m->corpus, "%s", o->corpus_path);
    snprintf(m->corpus_format, sizeof m->corpus_format, "%s", format_name(o->corpus_format));
    snprintf(m->tool_version, sizeof m->tool_version, "%s", KNNLM_VERSION);
    m->window = o->window;
    m->stride = o->stride;
    m->dtype = o->dtype;
    m->max_tokens = o->max_tokens;
    m->replace_invalid_utf8 = (o->corpus_flags & CORPUS_REPLACE_INVALID_UTF8) != 0;
    m->shard_index = o->shard_index;
    m->shard_count = o->shard_count;
    m->dim = c->n_embd;
    m->vocab_size = c->vocab_size;
    m->n_layer = c->n_layer;
    m->eos_id = corpus_eos_id(c->eos_token_id, b->tk);
    if (m->eos_id < 0) return kn_error(KN_EFORMAT, "%s: config.json has no eos_token_id and the tokenizer no </s>", o->model_dir);
    int rc = hash_file(gpt2_weights_path(b->model), m->weights_hash);
    if (rc == KN_OK) rc = hash_file(o->corpus_path, m->corpus_hash);
    return rc;
}

/* Decides what the folder holds: nothing (a new build), this build in progress, a build with other settings
 * that has no keys yet (taken over), this datastore finished, or something else (refused). Sets b->done: -1
 * (start from tokenization), >= 0 (resume), or -2 (complete). */
static int inspect_folder(Build *b) {
    const char *dir = b->opt->out_dir;
    if (file_exists(b->manifest_path)) {
        DstoreManifest have;
        int rc = manifest_read(&have, b->manifest_path);
        if (rc == KN_OK) rc = manifest_same_settings(&have, &b->man, dir);
        manifest_free(&have);
        if (rc != KN_OK) return kn_error_wrap(rc, "refusing to overwrite a finished datastore (choose another --out)");
        b->done = -2;
        return KN_OK;
    }
    const char *ours[] = {b->tokens_path, b->keys_path, b->vals_path};
    if (file_exists(b->build_path)) {
        DstoreManifest have;
        int rc = manifest_read(&have, b->build_path);
        if (rc == KN_OK) rc = manifest_read_extra(b->build_path, "entries_done", &b->done);
        if (rc == KN_OK) rc = manifest_same_settings(&have, &b->man, dir);
        manifest_free(&have);
        if (rc == KN_OK) return KN_OK;
        if (rc != KN_EMISMATCH || b->done > 0)
            return kn_error_wrap(rc, "refusing to mix a build in progress with other settings (use another --out, or delete %s to start over)", dir);
        /* A build that stopped before its first key (bad input, a full disk, a signal during tokenization)
         * holds nothing worth keeping: a corrected command takes the folder over rather than making the
         * user delete it. Its files are ours (build.json says so); tokens.npy may come from other input. */
        char tmp[PATH_MAX + 8];
        snprintf(tmp, sizeof tmp, "%s.tmp", b->tokens_path);
        unlink(tmp);
        for (int i = 0; i < 3; i++)
            if (unlink(ours[i]) != 0 && errno != ENOENT) return kn_error_errno("%s: cannot remove the unstarted build's file", ours[i]);
    } else {
        for (int i = 0; i < 3; i++)
            if (file_exists(ours[i])) return kn_error(KN_EINVAL, "%s: exists without a build.json or manifest.json; refusing to overwrite files of unknown origin", ours[i]);
    }
    b->done = -1;
    return write_checkpoint(b);
}

static int tokens_sink(void *ctx, const int32_t *ids, size_t n) {
    FILE *f = ctx;
    if (fwrite(ids, sizeof *ids, n, f) != n) return kn_error_errno("tokens.npy: write failed");
    return KN_OK;
}

/* corpus -> tokens.npy (through tokens.npy.tmp: the file exists only when complete). */
static int tokenize_corpus(Build *b) {
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", b->tokens_path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return kn_error_errno("%s: cannot create", tmp);
    uint8_t header[NPY_HEADER_BYTES] = {0};
    int rc = fwrite(header, 1, sizeof header, f) == sizeof header ? KN_OK : kn_error_errno("%s: write failed", tmp);
    CorpusOptions co = {b->opt->corpus_format, b->man.eos_id, b->opt->max_tokens, b->opt->corpus_flags};
    struct stat st;
    monitor_begin(b->mon, "tokenize", "bytes", stat(b->opt->corpus_path, &st) == 0 ? (uint64_t)st.st_size : 0, 0);
    if (rc == KN_OK) rc = corpus_tokenize(b->tk, b->opt->corpus_path, &co, tokens_sink, f, b->mon);
    long end = rc == KN_OK ? ftell(f) : 0;
    int64_t n = (end - NPY_HEADER_BYTES) / (int64_t)sizeof(int32_t);
    monitor_end(b->mon, (uint64_t)end, (uint64_t)n);
    if (rc == KN_OK && n < 2) rc = kn_error(KN_EINVAL, "%s: gives %lld tokens; a datastore needs at least 2", b->opt->corpus_path, (long long)n);
    if (rc == KN_OK) rc = npy_header(header, NPY_I32, 1, &n);
    if (rc == KN_OK && (fseek(f, 0, SEEK_SET) != 0 || fwrite(header, 1, sizeof header, f) != sizeof header || fflush(f) != 0))
        rc = kn_error_errno("%s: write failed", tmp);
    if (rc == KN_OK && fsync(fileno(f)) != 0) rc = kn_error_errno("%s: fsync failed", tmp);
    if (fclose(f) != 0 && rc == KN_OK) rc = kn_error_errno("%s: write failed", tmp);
    if (rc == KN_OK && rename(tmp, b->tokens_path) != 0) rc = kn_error_errno("%s: cannot rename", tmp);
    if (rc != KN_OK) unlink(tmp);
    return rc;
}

/* The stream length from tokens.npy, and this shard's windows and entries. */
static int plan_entries(Build *b) {
    NpyArray t;
    int rc = npy_map(&t, b->tokens_path);
    if (rc != KN_OK) return rc;
    int ok = t.dtype == NPY_I32 && t.ndim == 1;
    int64_t n = t.shape[0];
    npy_unmap(&t);
    if (!ok) return kn_error(KN_EFORMAT, "%s: not an int32 vector", b->tokens_path);
    const DstoreBuildOptions *o = b->opt;
    int64_t nw = window_count(n, o->window, o->stride);
    b->man.tokens = n;
    b->w_begin = nw * o->shard_index / o->shard_count;
    b->w_end = nw * (o->shard_index + 1) / o->shard_count;
    if (b->w_begin < b->w_end) {
        b->man.entry_begin = window_at(n, o->window, o->stride, b->w_begin).emit_begin;
        b->man.entries = window_at(n, o->window, o->stride, b->w_end - 1).emit_end - b->man.entry_begin;
    } else { /* more shards than windows: an empty shard */
        b->man.entry_begin = b->w_begin < nw ? window_at(n, o->window, o->stride, b->w_begin).emit_begin : n - 1;
        b->man.entries = 0;
    }
    return KN_OK;
}

static uint64_t keys_bytes(const Build *b) { return (uint64_t)b->man.entries * (uint64_t)b->man.dim * npy_dtype_size(b->man.dtype); }

static int check_free_space(const Build *b) {
    struct statvfs sv;
    if (statvfs(b->opt->out_dir, &sv) != 0) return KN_OK; /* unknown: the writes will tell */
    uint64_t need = keys_bytes(b) + (uint64_t)b->man.entries * 4 + 2 * NPY_HEADER_BYTES;
    uint64_t avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    if (need > avail)
        return kn_error(KN_ENOSPC, "%s: disk full: the datastore needs %.2f GiB (keys %.2f GiB, values %.2f GiB) but %.2f GiB are free",
                        b->opt->out_dir, need / 1073741824.0, keys_bytes(b) / 1073741824.0, b->man.entries * 4 / 1073741824.0, avail / 1073741824.0);
    return KN_OK;
}

/* keys.npy with its final header and size (allocated now, so a full disk shows before days of work) and
 * vals.npy complete (the values are the stream shifted by one). */
static int create_files(Build *b) {
    int fd = open(b->keys_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return kn_error_errno("%s: cannot create", b->keys_path);
    uint8_t header[NPY_HEADER_BYTES];
    int64_t kshape[2] = {b->man.entries, b->man.dim}, vshape[2] = {b->man.entries, 1};
    int rc = npy_header(header, b->man.dtype, 2, kshape);
    if (rc == KN_OK) rc = file_write_full(fd, header, sizeof header, b->keys_path);
    off_t total = (off_t)(NPY_HEADER_BYTES + keys_bytes(b));
    if (rc == KN_OK && total > NPY_HEADER_BYTES && fallocate(fd, 0, 0, total) != 0) {
        if (errno == EOPNOTSUPP || errno == ENOSYS) rc = ftruncate(fd, total) == 0 ? KN_OK : kn_error_errno("%s: cannot size", b->keys_path);
        else rc = kn_error_errno("%s: cannot allocate %.2f GiB", b->keys_path, (double)total / 1073741824.0);
    }
    if (rc == KN_OK && fsync(fd) != 0) rc = kn_error_errno("%s: fsync failed", b->keys_path);
    close(fd);
    if (rc != KN_OK) return rc;
    /* vals: tokens[entry_begin + 1 ...], copied in blocks */
    int tfd = open(b->tokens_path, O_RDONLY | O_CLOEXEC), vfd = open(b->vals_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (tfd < 0 || vfd < 0) rc = kn_error_errno("%s: cannot open", tfd < 0 ? b->tokens_path : b->vals_path);
    if (rc == KN_OK) rc = npy_header(header, NPY_I32, 2, vshape);
    if (rc == KN_OK) rc = file_write_full(vfd, header, sizeof header, b->vals_path);
    enum { BLOCK = 1 << 20 };
    int32_t *buf = rc == KN_OK ? malloc(BLOCK * sizeof *buf) : NULL;
    if (rc == KN_OK && !buf) rc = kn_error(KN_ENOMEM, "out of memory");
    for (int64_t at = 0; rc == KN_OK && at < b->man.entries; at += BLOCK) {
        int64_t n = b->man.entries - at < BLOCK ? b->man.entries - at : BLOCK;
        rc = file_pread_full(tfd, buf, (size_t)n * 4, NPY_HEADER_BYTES + (uint64_t)(b->man.entry_begin + at + 1) * 4, b->tokens_path);
        if (rc == KN_OK) rc = file_write_full(vfd, buf, (size_t)n * 4, b->vals_path);
    }
    free(buf);
    if (rc == KN_OK && fsync(vfd) != 0) rc = kn_error_errno("%s: fsync failed", b->vals_path);
    if (tfd >= 0) close(tfd);
    if (vfd >= 0) close(vfd);
    return rc;
}

/* Checks that keys.npy is the file create_files made for these settings (a resumed build writes into it). */
static int check_keys_file(Build *b) {
    NpyArray k;
    int rc = npy_map(&k, b->keys_path);
    if (rc != KN_OK) return kn_error_wrap(rc, "cannot resume (delete %s to start over)", b->opt->out_dir);
    int ok = k.dtype == b->man.dtype && k.ndim == 2 && k.shape[0] == b->man.entries && k.shape[1] == b->man.dim && k.data_offset == NPY_HEADER_BYTES;
    npy_unmap(&k);
    if (!ok) return kn_error(KN_EFORMAT, "%s: does not have the shape this build expects; cannot resume (delete %s to start over)", b->keys_path, b->opt->out_dir);
    return KN_OK;
}

static int checkpoint(Build *b) {
    if (fdatasync(b->keys_fd) != 0) return kn_error_errno("%s: fdatasync failed", b->keys_path);
    /* the synced pages will not be read again by the build: let the page cache drop them */
    posix_fadvise(b->keys_fd, 0, (off_t)(NPY_HEADER_BYTES + (uint64_t)b->done * b->man.dim * npy_dtype_size(b->man.dtype)), POSIX_FADV_DONTNEED);
    return write_checkpoint(b);
}

static int run_windows(Build *b, DstoreBuildReport *rep) {
    const DstoreBuildOptions *o = b->opt;
    const int64_t n = b->man.tokens, dim = b->man.dim;
    const size_t row_bytes = (size_t)dim * npy_dtype_size(b->man.dtype);
    Gpt2State *st = NULL;
    int rc = gpt2_state_create(&st, b->model, o->window, 0);
    int32_t *tok = malloc((size_t)o->window * sizeof *tok);
    void *rows = malloc((size_t)o->window * row_bytes);
    if (rc == KN_OK && (!tok || !rows)) rc = kn_error(KN_ENOMEM, "out of memory");
    int64_t w = b->done < b->man.entries ? window_of_entry(n, o->window, o->stride, b->man.entry_begin + b->done) : b->w_end;
    rep->resumed_at = b->done;
    monitor_begin(b->mon, "datastore", "entries", (uint64_t)b->man.entries, (uint64_t)b->done);
    double t0 = kn_seconds(), last_checkpoint = t0;
    for (; rc == KN_OK && w < b->w_end; w++) {
        Window win = window_at(n, o->window, o->stride, w);
        int64_t e0 = win.emit_begin > b->man.entry_begin + b->done ? win.emit_begin : b->man.entry_begin + b->done, e1 = win.emit_end;
        int T = (int)(win.end - win.begin);
        rc = file_pread_full(b->tokens_fd, tok, (size_t)T * 4, NPY_HEADER_BYTES + (uint64_t)win.begin * 4, b->tokens_path);
        double tm = kn_seconds();
        /* only the rows this window emits: the last block skips the others (gpt2_forward_rows) */
        if (rc == KN_OK) rc = gpt2_forward_rows(st, tok, T, (int)(e0 - win.begin), 1u << o->key);
        rep->model_seconds += kn_seconds() - tm;
        if (rc != KN_OK) break;
        const float *keys = gpt2_state_output(st, o->key) + (size_t)(e0 - win.begin) * dim;
        size_t count = (size_t)(e1 - e0) * (size_t)dim;
        if (b->man.dtype == NPY_F16) floats_to_halves(rows, keys, count);
        else memcpy(rows, keys, count * sizeof(float));
        uint64_t offset = NPY_HEADER_BYTES + (uint64_t)(e0 - b->man.entry_begin) * row_bytes;
        ssize_t wrote = pwrite(b->keys_fd, rows, (size_t)(e1 - e0) * row_bytes, (off_t)offset);
        if (wrote != (ssize_t)((size_t)(e1 - e0) * row_bytes)) {
            if (wrote >= 0) errno = ENOSPC; /* a short write to a regular file means the disk filled */
            rc = kn_error_errno("%s: writing keys failed after %lld entries (the last checkpoint stays valid: free space and run the same command to resume)",
                                b->keys_path, (long long)b->done);
            break;
        }
        b->done = e1 - b->man.entry_begin;
        rep->windows++;
        rep->forwarded_tokens += T;
        monitor_progress(b->mon, (uint64_t)b->done, (uint64_t)b->done * row_bytes);
        double now = kn_seconds();
        int stop = monitor_stopped(b->mon) || (o->stop_after_entries > 0 && b->done >= o->stop_after_entries);
        if (stop || now - last_checkpoint >= o->checkpoint_seconds) {
            rc = checkpoint(b);
            last_checkpoint = now;
            if (rc == KN_OK && stop)
                rc = kn_error(KN_EINTR, "%s: stopped at a checkpoint after %lld of %lld entries; run the same command to resume", o->out_dir,
                              (long long)b->done, (long long)b->man.entries);
        }
    }
    rep->seconds = kn_seconds() - t0;
    monitor_end(b->mon, (uint64_t)b->done, (uint64_t)b->done * row_bytes);
    if (rc != KN_OK && rc != KN_EINTR && b->done > 0) {
        /* keep what is on disk usable for the resume: a checkpoint of the entries written before the failure */
        int saved = rc;
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", kn_errmsg());
        (void)checkpoint(b); /* if even build.json cannot be written (a full disk), the older checkpoint stands */
        rc = kn_error(saved, "%s", msg);
    }
    gpt2_state_free(st);
    free(tok);
    free(rows);
    return rc;
}

static int finish(Build *b) {
    int rc = fsync(b->keys_fd) == 0 ? KN_OK : kn_error_errno("%s: fsync failed", b->keys_path);
    if (rc == KN_OK) rc = hash_file(b->keys_path, b->man.keys_hash);
    if (rc == KN_OK) rc = hash_file(b->vals_path, b->man.vals_hash);
    if (rc == KN_OK) rc = hash_file(b->tokens_path, b->man.tokens_hash);
    if (rc == KN_OK) rc = manifest_write(&b->man, b->manifest_path, NULL, 0);
    if (rc == KN_OK && unlink(b->build_path) != 0) rc = kn_error_errno("%s: cannot remove", b->build_path);
    if (rc == KN_OK) {
        int dfd = open(b->opt->out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return rc;
}

static int check_options(const DstoreBuildOptions *o) {
    int rc = window_check(o->window, o->stride);
    if (rc != KN_OK) return rc;
    if (o->shard_count < 1 || o->shard_index < 0 || o->shard_index >= o->shard_count)
        return kn_error(KN_EINVAL, "--shard %d/%d: expected i/N with 0 <= i < N", o->shard_index, o->shard_count);
    if (o->dtype != NPY_F16 && o->dtype != NPY_F32) return kn_error(KN_EINVAL, "--dtype: keys are f16 or f32");
    if (o->max_tokens < 0) return kn_error(KN_EINVAL, "--max-tokens %lld: must be positive", (long long)o->max_tokens);
    if (!(o->checkpoint_seconds >= 0)) return kn_error(KN_EINVAL, "checkpoint interval must be >= 0 seconds");
    return KN_OK;
}

/* Paths, the folder and its lock. The lock file exists only while a build holds it: the holder removes it
 * before it lets go (release_lock), so a finished or failed build leaves no .lock behind. A build that
 * opened the file just before the holder removed it would then lock a file nobody else sees: after taking
 * the lock it checks that the path still names the file it locked, and starts over if not. */
static int open_folder(Build *b) {
    const char *dir = b->opt->out_dir;
    int rc = file_mkdirs(dir);
    if (rc == KN_OK) rc = path_join(b->build_path, sizeof b->build_path, dir, "build.json");
    if (rc == KN_OK) rc = path_join(b->manifest_path, sizeof b->manifest_path, dir, "manifest.json");
    if (rc == KN_OK) rc = path_join(b->tokens_path, sizeof b->tokens_path, dir, "tokens.npy");
    if (rc == KN_OK) rc = path_join(b->keys_path, sizeof b->keys_path, dir, "keys.npy");
    if (rc == KN_OK) rc = path_join(b->vals_path, sizeof b->vals_path, dir, "vals.npy");
    if (rc == KN_OK) rc = path_join(b->lock_path, sizeof b->lock_path, dir, ".lock");
    if (rc != KN_OK) return rc;
    for (;;) {
        int fd = open(b->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) return kn_error_errno("%s: cannot create lock file", b->lock_path);
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd);
            return kn_error(KN_EINVAL, "%s: another datastore build is running in this folder", dir);
        }
        struct stat held, named;
        if (fstat(fd, &held) == 0 && stat(b->lock_path, &named) == 0 && held.st_ino == named.st_ino && held.st_dev == named.st_dev) {
            b->lock_fd = fd;
            return KN_OK;
        }
        close(fd); /* the previous holder removed it as we opened it: take the new one */
    }
}

static void release_lock(Build *b) {
    if (b->lock_fd < 0) return;
    unlink(b->lock_path); /* while still holding it: see open_folder */
    close(b->lock_fd);
    b->lock_fd = -1;
}

int dstore_build(const DstoreBuildOptions *o, const KnMonitor *mon, DstoreBuildReport *rep) {
    memset(rep, 0, sizeof *rep);
    int rc = check_options(o);
    if (rc != KN_OK) return rc;
    Build b = {.opt = o, .mon = mon, .lock_fd = -1, .tokens_fd = -1, .keys_fd = -1};
    char path[PATH_MAX];
    rc = open_folder(&b);
    if (rc == KN_OK) rc = gpt2_load(&b.model, o->model_dir, o->weights_path);
    if (rc == KN_OK && o->precision != GPT2_FP32) rc = gpt2_set_precision(b.model, o->precision);
    if (rc == KN_OK && o->window > gpt2_config(b.model)->n_positions)
        rc = kn_error(KN_EINVAL, "--window %d: the model takes at most %d tokens (n_positions)", o->window, gpt2_config(b.model)->n_positions);
    if (rc == KN_OK) rc = path_join(path, sizeof path, o->model_dir, "tokenizer.json");
    if (rc == KN_OK) rc = tokenizer_load(&b.tk, path);
    if (rc == KN_OK) rc = wanted_settings(&b);
    if (rc == KN_OK) rc = inspect_folder(&b);
    if (rc == KN_OK && b.done == -2) {
        DstoreManifest have;
        if (manifest_read(&have, b.manifest_path) == KN_OK) {
            rep->tokens = have.tokens;
            rep->entries = have.entries;
            manifest_free(&have);
        }
        rep->already_complete = 1;
    } else if (rc == KN_OK) {
        if (b.done < 0) {
            if (!file_exists(b.tokens_path)) rc = tokenize_corpus(&b);
            if (rc == KN_OK) rc = plan_entries(&b);
            if (rc == KN_OK) rc = check_free_space(&b);
            if (rc == KN_OK) rc = create_files(&b);
            b.done = 0;
            if (rc == KN_OK) rc = write_checkpoint(&b);
        } else {
            rc = plan_entries(&b);
            if (rc == KN_OK) rc = check_keys_file(&b);
            if (rc == KN_OK && b.done > b.man.entries)
                rc = kn_error(KN_EFORMAT, "%s: checkpoint at entry %lld is past the end (%lld)", b.build_path, (long long)b.done, (long long)b.man.entries);
        }
        rep->tokens = b.man.tokens;
        rep->entries = b.man.entries;
        if (rc == KN_OK) {
            b.tokens_fd = open(b.tokens_path, O_RDONLY | O_CLOEXEC);
            b.keys_fd = open(b.keys_path, O_RDWR | O_CLOEXEC);
            if (b.tokens_fd < 0 || b.keys_fd < 0) rc = kn_error_errno("%s: cannot open", b.tokens_fd < 0 ? b.tokens_path : b.keys_path);
        }
        if (rc == KN_OK) rc = run_windows(&b, rep);
        if (rc == KN_OK) rc = finish(&b);
    }
    if (b.tokens_fd >= 0) close(b.tokens_fd);
    if (b.keys_fd >= 0) close(b.keys_fd);
    release_lock(&b);
    tokenizer_free(b.tk);
    gpt2_free(b.model);
    manifest_free(&b.man);
    return rc;
}

int dstore_build_progress(const char *dir, DstoreBuildProgress *p) {
    memset(p, 0, sizeof *p);
    char path[PATH_MAX];
    int rc = path_join(path, sizeof path, dir, "build.json");
    if (rc != KN_OK) return rc;
    if (!file_exists(path)) return kn_error(KN_ENOTFOUND, "%s: no datastore build in progress (no build.json)", dir);
    rc = manifest_read(&p->settings, path);
    if (rc == KN_OK) rc = manifest_read_extra(path, "entries_done", &p->entries_done);
    if (rc == KN_OK && p->entries_done > p->settings.entries)
        rc = kn_error(KN_EFORMAT, "%s: entries_done %lld is past the %lld entries", path, (long long)p->entries_done, (long long)p->settings.entries);
    if (rc == KN_OK && path_join(path, sizeof path, dir, "tokens.npy") == KN_OK) p->tokens_written = file_exists(path);
    if (rc != KN_OK) manifest_free(&p->settings);
    return rc;
}
