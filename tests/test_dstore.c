/* test_dstore.c — the datastore: entry count and values, every key equal (bit for bit) to a direct forward
 * of its window, interrupt-and-resume byte-identical to an uninterrupted build, refusal to mix settings or
 * overwrite unknown files, shards merged (copied or linked) equal to the whole, verify catching damage. */
#include "dstore/build.h"
#include "dstore/dstore.h"
#include "dstore/window.h"
#include "util/error.h"
#include "util/file.h"
#include "util/half.h"
#include "test.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODEL "tests/data/tiny-random"
static char dir[64], corpus[128];

static void options(DstoreBuildOptions *o, const char *out) {
    dstore_build_defaults(o);
    o->model_dir = MODEL;
    o->corpus_path = corpus;
    o->out_dir = out;
    o->window = 64;
    o->stride = 24;
    o->max_tokens = 3000;
}

/* dir/name in one of 64 rotating buffers (enough for the paths alive at once in one test). */
static char *sub(const char *name) {
    static char paths[64][256];
    static int next = 0;
    char *p = paths[next++ % 64];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static int same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t lx = 0, ly = 0;
    int same = file_read_all(a, &x, &lx) == KN_OK && file_read_all(b, &y, &ly) == KN_OK && lx == ly && memcmp(x, y, lx) == 0;
    free(x);
    free(y);
    return same;
}

static int same_datastore(const char *a, const char *b) {
    const char *files[] = {"keys.npy", "vals.npy", "tokens.npy", "manifest.json"};
    int same = 1;
    for (int i = 0; i < 4; i++) {
        char pa[300], pb[300];
        snprintf(pa, sizeof pa, "%s/%s", a, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[i]);
        if (!same_file(pa, pb)) {
            fprintf(stderr, "  %s differs between %s and %s\n", files[i], a, b);
            same = 0;
        }
    }
    return same;
}

/* The reference build every other test compares with. */
static void test_build_and_keys(void) {
    DstoreBuildOptions o;
    DstoreBuildReport rep;
    options(&o, sub("full"));
    o.dtype = NPY_F32;
    CHECK_OK(dstore_build(&o, NULL, &rep));
    CHECK_EQ_INT(rep.tokens, 3000);
    CHECK_EQ_INT(rep.entries, 2999);
    Dstore *ds;
    CHECK_OK(dstore_open(&ds, sub("full")));
    CHECK_EQ_INT(dstore_size(ds), 2999);
    CHECK_EQ_INT(dstore_dim(ds), 64);
    /* every key equals the forward pass of its window computed here, bit for bit; every value is the next token */
    NpyArray tokens;
    CHECK_OK(npy_map(&tokens, sub("full/tokens.npy")));
    const int32_t *tok = tokens.data;
    Gpt2 *m;
    Gpt2State *st;
    CHECK_OK(gpt2_load(&m, MODEL, NULL));
    CHECK_OK(gpt2_state_create(&st, m, 64, 0));
    float row[64];
    int64_t checked = 0, bad_keys = 0, bad_vals = 0;
    for (int64_t w = 0; w < window_count(3000, 64, 24); w++) {
        Window win = window_at(3000, 64, 24, w);
        CHECK_OK(gpt2_forward(st, tok + win.begin, (int)(win.end - win.begin), GPT2_NEED_LAST_FFN_INPUT));
        for (int64_t t = win.emit_begin; t < win.emit_end; t++) {
            dstore_keys(ds, t, 1, row);
            bad_keys += memcmp(row, gpt2_state_output(st, KEY_LAST_FFN_INPUT) + (t - win.begin) * 64, sizeof row) != 0;
            bad_vals += dstore_value(ds, t) != tok[t + 1];
            checked++;
        }
    }
    CHECK_EQ_INT(checked, 2999);
    CHECK_EQ_INT(bad_keys, 0);
    CHECK_EQ_INT(bad_vals, 0);
    gpt2_state_free(st);
    gpt2_free(m);
    npy_unmap(&tokens);
    DstoreVerifyReport vr;
    CHECK_OK(dstore_verify(ds, NULL, &vr));
    CHECK(vr.hashes_checked && vr.hashes_match);
    dstore_close(ds);
    /* the same again, in float16: keys are the float32 ones rounded to nearest even */
    options(&o, sub("full16"));
    CHECK_OK(dstore_build(&o, NULL, &rep));
    Dstore *d16;
    CHECK_OK(dstore_open(&d16, sub("full16")));
    CHECK_OK(dstore_open(&ds, sub("full")));
    int64_t bad = 0;
    for (int64_t t = 0; t < 2999; t += 7) {
        float a[64], b[64];
        dstore_keys(ds, t, 1, a);
        dstore_keys(d16, t, 1, b);
        for (int i = 0; i < 64; i++) bad += f16_to_f32(f32_to_f16(a[i])) != b[i];
    }
    CHECK_EQ_INT(bad, 0);
    dstore_close(ds);
    dstore_close(d16);
    /* running it again finds it complete */
    CHECK_OK(dstore_build(&o, NULL, &rep));
    CHECK(rep.already_complete);
}

/* A monitor that asks to stop after a given number of progress reports (one per window). */
typedef struct {
    int calls, stop_after;
    volatile sig_atomic_t stop;
} StopAfter;

static void count_progress(void *ctx, uint64_t done, uint64_t bytes) {
    StopAfter *s = ctx;
    if (++s->calls >= s->stop_after) s->stop = 1;
}

/* Stopped at several points (each time resumed by the same call), the build ends byte-identical. */
static void test_interrupt_and_resume(void) {
    DstoreBuildOptions o;
    DstoreBuildReport rep;
    char out[256];
    snprintf(out, sizeof out, "%s", sub("resumed"));
    options(&o, out);
    int stops[] = {1, 7, 30, 55}, n_stops = 0;
    for (;;) {
        StopAfter s = {0, stops[n_stops < 4 ? n_stops : 3] , 0};
        KnMonitor mon = {.progress = count_progress, .ctx = &s, .stop = &s.stop};
        if (n_stops >= 4) mon.stop = NULL;
        int rc = dstore_build(&o, &mon, &rep);
        if (rc == KN_OK) break;
        CHECK_MSG(rc == KN_EINTR, "%s", kn_errmsg());
        CHECK(strstr(kn_errmsg(), "resume") != NULL);
        CHECK(file_exists(sub("resumed/build.json")) && !file_exists(sub("resumed/manifest.json")));
        n_stops++;
        if (n_stops > 10) break;
    }
    CHECK_EQ_INT(n_stops, 4);
    CHECK(rep.resumed_at > 0);
    CHECK(same_datastore(sub("full16"), sub("resumed")));
    CHECK(!file_exists(sub("resumed/build.json")));
}

/* A kill between checkpoints: keys written after the last checkpoint are garbage; the resume rewrites them. */
static void test_resume_overwrites_unsaved_keys(void) {
    DstoreBuildOptions o;
    DstoreBuildReport rep;
    options(&o, sub("killed"));
    o.checkpoint_seconds = 1e9; /* no checkpoint but the one at the stop */
    StopAfter s = {0, 40, 0};
    KnMonitor mon = {.progress = count_progress, .ctx = &s, .stop = &s.stop};
    CHECK_EQ_INT(dstore_build(&o, &mon, &rep), KN_EINTR);
    /* pretend the process died after writing 30 more windows' worth of keys that no checkpoint covers:
     * scribble over everything past the checkpoint, and move the checkpoint back */
    int64_t done;
    CHECK_OK(manifest_read_extra(sub("killed/build.json"), "entries_done", &done));
    int fd = open(sub("killed/keys.npy"), O_WRONLY);
    char junk[4096];
    memset(junk, 0x5a, sizeof junk);
    for (int64_t off = 128 + done / 2 * 128, end = 128 + 2999 * 128; off < end; off += sizeof junk)
        CHECK(pwrite(fd, junk, end - off < (int64_t)sizeof junk ? (size_t)(end - off) : sizeof junk, off) > 0);
    close(fd);
    DstoreManifest m;
    CHECK_OK(manifest_read(&m, sub("killed/build.json")));
    CHECK_OK(manifest_write(&m, sub("killed/build.json"), "entries_done", done / 2));
    manifest_free(&m);
    CHECK_OK(dstore_build(&o, NULL, &rep));
    CHECK_EQ_INT(rep.resumed_at, done / 2);
    CHECK(same_datastore(sub("full16"), sub("killed")));
}

static void test_refuses_other_settings(void) {
    DstoreBuildOptions o;
    DstoreBuildReport rep;
    options(&o, sub("full16"));
    o.stride = 32;
    CHECK_EQ_INT(dstore_build(&o, NULL, &rep), KN_EMISMATCH);
    CHECK_MSG(strstr(kn_errmsg(), "--stride 24, not 32") != NULL, "%s", kn_errmsg());
    /* a build in progress with other settings */
    options(&o, sub("partial"));
    StopAfter s = {0, 3, 0};
    KnMonitor mon = {.progress = count_progress, .ctx = &s, .stop = &s.stop};
    CHECK_EQ_INT(dstore_build(&o, &mon, &rep), KN_EINTR);
    o.key = KEY_FINAL_HIDDEN;
    CHECK_EQ_INT(dstore_build(&o, NULL, &rep), KN_EMISMATCH);
    CHECK_MSG(strstr(kn_errmsg(), "--key last_ffn_input, not final_hidden") != NULL, "%s", kn_errmsg());
    o.key = KEY_LAST_FFN_INPUT;
    o.max_tokens = 2000;
    CHECK_EQ_INT(dstore_build(&o, NULL, &rep), KN_EMISMATCH);
    /* files of unknown origin */
    CHECK_OK(file_mkdirs(sub("foreign")));
    CHECK_OK(file_write_atomic(sub("foreign/keys.npy"), "x", 1));
    options(&o, sub("foreign"));
    CHECK_EQ_INT(dstore_build(&o, NULL, &rep), KN_EINVAL);
    CHECK(strstr(kn_errmsg(), "unknown origin") != NULL);
    char *text;
    size_t len;
    CHECK_OK(file_read_all(sub("foreign/keys.npy"), &text, &len));
    CHECK(len == 1 && text[0] == 'x');
    free(text);
    /* bad options */
    options(&o, sub("bad"));
    o.stride = 65;
    CHECK_EQ_INT(dstore_build(&o, NULL, &rep), KN_EINVAL);
    options(&o, sub("bad"));
    o.window = 256; /* the model's n_positions is 128 */
    CHECK_EQ_INT(dstore_build(&o, NULL, &rep), KN_EINVAL);
    options(&o, sub("bad"));
    o.shard_index = 3;
    o.shard_count = 3;
    CHECK_EQ_INT(dstore_build(&o, NULL, &rep), KN_EINVAL);
}

/* The pages of files this process has mapped and that are in memory (/proc/self/statm: shared). */
static long file_pages_resident(void) {
    long size = 0, resident = 0, shared = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld %ld", &size, &resident, &shared) != 3) shared = -1;
        fclose(f);
    }
    return shared;
}

static void test_shards_and_merge(void) {
    DstoreBuildOptions o;
    DstoreBuildReport rep;
    const char *shards[3];
    int64_t total = 0;
    for (int i = 2; i >= 0; i--) { /* out of order on purpose */
        char name[32];
        snprintf(name, sizeof name, "shard%d", i);
        shards[i] = strdup(sub(name));
        options(&o, shards[i]);
        o.shard_index = i;
        o.shard_count = 3;
        CHECK_OK(dstore_build(&o, NULL, &rep));
        total += rep.entries;
    }
    CHECK_EQ_INT(total, 2999);
    const char *given[3] = {shards[1], shards[2], shards[0]};
    CHECK_OK(dstore_merge(sub("merged"), given, 3, 0, NULL));
    const char *files[] = {"keys.npy", "vals.npy", "tokens.npy"};
    for (int i = 0; i < 3; i++) {
        char a[300], b[300];
        snprintf(a, sizeof a, "%s/%s", sub("full16"), files[i]);
        snprintf(b, sizeof b, "%s/%s", sub("merged"), files[i]);
        CHECK_MSG(same_file(a, b), "%s differs", files[i]);
    }
    Dstore *ds;
    CHECK_OK(dstore_open(&ds, sub("merged")));
    DstoreVerifyReport vr;
    CHECK_OK(dstore_verify(ds, NULL, &vr));
    dstore_close(ds);
    /* linked: nothing copied, the same keys and values through the parts */
    CHECK_OK(dstore_merge(sub("linked"), given, 3, 1, NULL));
    CHECK(!file_exists(sub("linked/keys.npy")));
    Dstore *full, *linked;
    CHECK_OK(dstore_open(&full, sub("full16")));
    CHECK_OK(dstore_open(&linked, sub("linked")));
    CHECK_EQ_INT(dstore_size(linked), 2999);
    float *a = malloc(2999 * 64 * sizeof(float)), *b = malloc(2999 * 64 * sizeof(float));
    dstore_keys(full, 0, 2999, a);
    dstore_keys(linked, 0, 2999, b);
    CHECK(memcmp(a, b, 2999 * 64 * sizeof(float)) == 0);
    /* releasing the pages read (in uneven blocks, across the parts' boundaries) unmaps them (2999 float16 rows of
     * 64 = 94 pages, less the pages a block shares with the next) and loses nothing */
    long mapped = file_pages_resident();
    for (int64_t r0 = 0; r0 < 2999; r0 += 700) dstore_release_keys(linked, r0, r0 + 700 < 2999 ? r0 + 700 : 2999);
    long released = mapped - file_pages_resident();
    CHECK_MSG(released >= 80, "%ld of ~94 pages released", released);
    memset(b, 0, 2999 * 64 * sizeof(float));
    dstore_keys(linked, 0, 2999, b);
    CHECK(memcmp(a, b, 2999 * 64 * sizeof(float)) == 0);
    int64_t rows[4] = {2998, 0, 1500, -1};
    float r[4 * 64];
    /* prefetching (rows of every part, unsorted, repeated, -1 and past the end among them) changes nothing */
    int64_t ahead[9] = {2998, 0, 1500, -1, 2998, 2999, 1, 1000, 999};
    dstore_prefetch_rows(linked, ahead, 9);
    dstore_prefetch_rows(full, ahead, 9);
    dstore_prefetch_rows(full, ahead, 0);
    dstore_key_rows(linked, rows, 4, r);
    CHECK(memcmp(r, a + 2998 * 64, 64 * sizeof(float)) == 0 && memcmp(r + 128, a + 1500 * 64, 64 * sizeof(float)) == 0);
    CHECK(r[3 * 64] != r[3 * 64]); /* row -1 gives NaN */
    int vals_equal = 1;
    for (int64_t t = 0; t < 2999; t++) vals_equal &= dstore_value(full, t) == dstore_value(linked, t);
    CHECK(vals_equal);
    free(a);
    free(b);
    dstore_close(full);
    dstore_close(linked);
    /* a missing or doubled shard is refused */
    const char *two[2] = {shards[0], shards[1]};
    CHECK_EQ_INT(dstore_merge(sub("m2"), two, 2, 0, NULL), KN_EINVAL);
    const char *dup[3] = {shards[0], shards[1], shards[1]};
    CHECK_EQ_INT(dstore_merge(sub("m3"), dup, 3, 0, NULL), KN_EINVAL);
    CHECK(strstr(kn_errmsg(), "twice") != NULL);
    for (int i = 0; i < 3; i++) free((void *)shards[i]);
}

static void test_verify_catches_damage(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp -r %s %s", sub("full"), sub("damaged"));
    CHECK(system(cmd) == 0);
    /* a NaN key (float32 store): 0x7fc00000 at row 10 */
    int fd = open(sub("damaged/keys.npy"), O_WRONLY);
    uint32_t nan_bits = 0x7fc00000u;
    CHECK(pwrite(fd, &nan_bits, 4, 128 + 10 * 64 * 4) == 4);
    close(fd);
    Dstore *ds;
    DstoreVerifyReport vr;
    CHECK_OK(dstore_open(&ds, sub("damaged")));
    CHECK_EQ_INT(dstore_verify(ds, NULL, &vr), KN_EFORMAT);
    CHECK_EQ_INT(vr.nonfinite_keys, 1);
    CHECK(!vr.hashes_match);
    dstore_close(ds);
    /* a value out of the vocabulary: refused at open, naming the file, the row and the value */
    fd = open(sub("damaged/vals.npy"), O_RDWR);
    int32_t v = 60000, was;
    CHECK(pread(fd, &was, 4, 128 + 5 * 4) == 4);
    CHECK(pwrite(fd, &v, 4, 128 + 5 * 4) == 4);
    CHECK_EQ_INT(dstore_open(&ds, sub("damaged")), KN_EFORMAT);
    CHECK_MSG(strstr(kn_errmsg(), "damaged/vals.npy: row 5 holds the value 60000, outside the vocabulary [0, 51200)") != NULL, "%s", kn_errmsg());
    v = -1;
    CHECK(pwrite(fd, &v, 4, 128 + 2998 * 4) == 4); /* the last row, and a negative value */
    CHECK(pwrite(fd, &was, 4, 128 + 5 * 4) == 4);
    CHECK_EQ_INT(dstore_open(&ds, sub("damaged")), KN_EFORMAT);
    CHECK_MSG(strstr(kn_errmsg(), "row 2998 holds the value -1") != NULL, "%s", kn_errmsg());
    /* a value in the vocabulary that is not the next token: verify finds it */
    CHECK(pread(fd, &v, 4, 128 + 2997 * 4) == 4);
    CHECK(pwrite(fd, &v, 4, 128 + 2998 * 4) == 4);
    close(fd);
    CHECK_OK(dstore_open(&ds, sub("damaged")));
    CHECK_EQ_INT(dstore_verify(ds, NULL, &vr), KN_EFORMAT);
    CHECK_EQ_INT(vr.bad_values, 0);
    CHECK(vr.value_mismatches >= 1);
    dstore_close(ds);
    /* a truncated keys file does not open */
    CHECK(truncate(sub("damaged/keys.npy"), 1000) == 0);
    CHECK_EQ_INT(dstore_open(&ds, sub("damaged")), KN_EFORMAT);
    CHECK(strstr(kn_errmsg(), "keys.npy") != NULL);
    /* an unfinished build is not a datastore, but says how far it got */
    CHECK_EQ_INT(dstore_open(&ds, sub("partial")), KN_EINVAL);
    CHECK(strstr(kn_errmsg(), "not finished") != NULL);
    DstoreBuildProgress p;
    CHECK_OK(dstore_build_progress(sub("partial"), &p));
    CHECK(p.entries_done > 0 && p.entries_done < p.settings.entries);
    CHECK_EQ_INT(p.settings.entries, 2999);
    CHECK(p.tokens_written);
    manifest_free(&p.settings);
    CHECK_EQ_INT(dstore_build_progress(sub("full"), &p), KN_ENOTFOUND);
}

/* verify hashes every file the manifest lists: tokens.npy too, even where no value depends on the change */
static void test_verify_hashes_tokens(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp -r %s %s", sub("full"), sub("tokdamaged"));
    CHECK(system(cmd) == 0);
    Dstore *ds;
    DstoreVerifyReport vr;
    CHECK_OK(dstore_open(&ds, sub("tokdamaged")));
    CHECK(dstore_manifest(ds)->tokens_hash[0] != '\0');
    CHECK_OK(dstore_verify(ds, NULL, &vr));
    CHECK(vr.hashes_checked && vr.hashes_match);
    dstore_close(ds);
    int fd = open(sub("tokdamaged/tokens.npy"), O_RDWR);
    int32_t t0;
    CHECK(pread(fd, &t0, 4, 128) == 4);
    t0 ^= 1; /* token 0 is no entry's value: only the hash can tell */
    CHECK(pwrite(fd, &t0, 4, 128) == 4);
    close(fd);
    CHECK_OK(dstore_open(&ds, sub("tokdamaged")));
    CHECK_EQ_INT(dstore_verify(ds, NULL, &vr), KN_EFORMAT);
    CHECK_MSG(strstr(kn_errmsg(), "tokdamaged/tokens.npy: content hash") != NULL, "%s", kn_errmsg());
    CHECK_EQ_INT(vr.value_mismatches, 0);
    CHECK(!vr.hashes_match);
    dstore_close(ds);
    CHECK(unlink(sub("tokdamaged/tokens.npy")) == 0);
    CHECK_OK(dstore_open(&ds, sub("tokdamaged")));
    CHECK_EQ_INT(dstore_verify(ds, NULL, &vr), KN_ENOTFOUND);
    CHECK_MSG(strstr(kn_errmsg(), "tokens.npy: missing") != NULL, "%s", kn_errmsg());
    dstore_close(ds);
}

/* An unknown key type in a manifest is refused when it is read, naming the file. */
static void test_manifest_unknown_key(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp -r %s %s && sed -i 's/\"last_ffn_input\"/\"middle_layer\"/' %s", sub("full"), sub("badkey"), sub("badkey/manifest.json"));
    CHECK(system(cmd) == 0);
    Dstore *ds;
    CHECK_EQ_INT(dstore_open(&ds, sub("badkey")), KN_EFORMAT);
    CHECK_MSG(strstr(kn_errmsg(), "badkey/manifest.json: key \"middle_layer\" is not one of") != NULL, "%s", kn_errmsg());
}

/* A build that stops before its first key leaves nothing that blocks another command; no build leaves a
 * .lock behind. */
static void test_unstarted_build_taken_over(void) {
    DstoreBuildOptions o;
    DstoreBuildReport rep;
    CHECK(!file_exists(sub("full/.lock")) && !file_exists(sub("partial/.lock")));
    /* stopped during tokenization (the stop flag is already set): build.json says no entry is done */
    options(&o, sub("unstarted"));
    volatile sig_atomic_t stop = 1;
    KnMonitor mon = {.stop = &stop};
    CHECK_EQ_INT(dstore_build(&o, &mon, &rep), KN_EINTR);
    CHECK(file_exists(sub("unstarted/build.json")) && !file_exists(sub("unstarted/keys.npy")));
    CHECK(!file_exists(sub("unstarted/.lock")));
    DstoreBuildProgress p;
    CHECK_OK(dstore_build_progress(sub("unstarted"), &p));
    CHECK_EQ_INT(p.entries_done, -1);
    manifest_free(&p.settings);
    /* other settings take the folder over and give the same bytes as a fresh build */
    o.stride = 32;
    CHECK_OK(dstore_build(&o, NULL, &rep));
    CHECK(!file_exists(sub("unstarted/.lock")) && !file_exists(sub("unstarted/build.json")));
    options(&o, sub("fresh32"));
    o.stride = 32;
    CHECK_OK(dstore_build(&o, NULL, &rep));
    CHECK(same_datastore(sub("unstarted"), sub("fresh32")));
}

int main(void) {
    strcpy(dir, "/tmp/knnlm-test-dstore-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(corpus, sizeof corpus, "data/kowiki-sample/valid.txt");
    RUN(test_build_and_keys);
    RUN(test_interrupt_and_resume);
    RUN(test_resume_overwrites_unsaved_keys);
    RUN(test_refuses_other_settings);
    RUN(test_shards_and_merge);
    RUN(test_verify_catches_damage);
    RUN(test_verify_hashes_tokens);
    RUN(test_manifest_unknown_key);
    RUN(test_unstarted_build_taken_over);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return TEST_EXIT();
}
