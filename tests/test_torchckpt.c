/* test_torchckpt.c — PyTorch zip checkpoints made by hand, opcode by opcode, each broken in one way (zip
 * structure, pickle, storage), hostile pickles (deep, self-referencing, huge claims), and random corruption
 * of data.pkl fed straight to the unpickler and the state-dict reader (in a file, data.pkl's CRC would
 * catch it first). Then legacy (pre-1.6) checkpoints: torch's own cut at every byte and poked field by
 * field, hand-made ones broken one way each (storage views included), and the tiny-random GPT-2 converted
 * to the legacy format, which must give the safetensors model's logits bit for bit. */
#include "model/gpt2.h"
#include "model/pickle.h"
#include "model/torchckpt.h"
#include "model/torchlegacy.h"
#include "model/torchzip.h"

#include "tensorfile_testkit.h"

#include <zlib.h>

/* ---- hand-made PyTorch checkpoints: a stored zip around a pickle we write opcode by opcode ---- */

typedef struct {
    const char *name;
    const void *data;
    size_t size;
    uint16_t method;
} ZipItem;

/* A zip as torch writes it (without its 64-byte alignment padding): local headers, data, central directory,
 * end record. */
static void build_zip(Buf *b, const ZipItem *items, int n) {
    uint64_t offsets[16];
    for (int i = 0; i < n; i++) {
        uint32_t crc = (uint32_t)crc32(0, items[i].data, (uInt)items[i].size);
        offsets[i] = b->len;
        put_le(b, 0x04034b50, 4), put_le(b, 20, 2), put_le(b, 0, 2), put_le(b, items[i].method, 2);
        put_le(b, 0, 4), put_le(b, crc, 4), put_le(b, items[i].size, 4), put_le(b, items[i].size, 4);
        put_le(b, strlen(items[i].name), 2), put_le(b, 0, 2), put_str(b, items[i].name);
        put(b, items[i].data, items[i].size);
    }
    size_t cd = b->len;
    for (int i = 0; i < n; i++) {
        uint32_t crc = (uint32_t)crc32(0, items[i].data, (uInt)items[i].size);
        put_le(b, 0x02014b50, 4), put_le(b, 20, 2), put_le(b, 20, 2), put_le(b, 0, 2);
        put_le(b, items[i].method, 2), put_le(b, 0, 4), put_le(b, crc, 4), put_le(b, items[i].size, 4);
        put_le(b, items[i].size, 4), put_le(b, strlen(items[i].name), 2), put_le(b, 0, 2), put_le(b, 0, 2);
        put_le(b, 0, 2), put_le(b, 0, 2), put_le(b, 0, 4), put_le(b, offsets[i], 4), put_str(b, items[i].name);
    }
    put_le(b, 0x06054b50, 4), put_le(b, 0, 4), put_le(b, (uint64_t)n, 2), put_le(b, (uint64_t)n, 2);
    put_le(b, b->len - cd - 12, 4), put_le(b, cd, 4), put_le(b, 0, 2);
}

static void pk_str(Buf *b, const char *s) {
    put(b, "X", 1);
    put_le(b, strlen(s), 4);
    put_str(b, s);
}

static void pk_int(Buf *b, int64_t v) {
    put(b, "J", 1);
    put_le(b, (uint64_t)v, 4);
}

static void pk_ints(Buf *b, const int64_t *v, int n) {
    put(b, "(", 1);
    for (int i = 0; i < n; i++) pk_int(b, v[i]);
    put(b, "t", 1);
}

/* The pickle torch.save writes for {name: tensor} (protocol 2), with each part chosen by the caller. */
typedef struct {
    const char *name, *storage_type, *key;
    int64_t storage_numel, offset;
    int ndim;
    int64_t shape[4], stride[4];
    const Buf *sixth;   /* opcodes of a sixth persistent-id item (the legacy view metadata), or NULL */
} PickledTensor;

static void pickle_state_n(Buf *b, const PickledTensor *ts, int n) {
    put_str(b, "\x80\x02" "ccollections\nOrderedDict\n)R(");
    for (int i = 0; i < n; i++) {
        const PickledTensor *t = &ts[i];
        pk_str(b, t->name);
        put_str(b, "ctorch._utils\n_rebuild_tensor_v2\n((");
        pk_str(b, "storage");
        put_str(b, "ctorch\n"), put_str(b, t->storage_type), put_str(b, "\n");
        pk_str(b, t->key);
        pk_str(b, "cpu");
        pk_int(b, t->storage_numel);
        if (t->sixth) put(b, t->sixth->p, t->sixth->len);
        put_str(b, "tQ");
        pk_int(b, t->offset);
        pk_ints(b, t->shape, t->ndim);
        pk_ints(b, t->stride, t->ndim);
        put_str(b, "\x89}tR");
    }
    put_str(b, "u.");
}

static void pickle_state(Buf *b, const PickledTensor *t) { pickle_state_n(b, t, 1); }

static const PickledTensor good_tensor = {"w", "FloatStorage", "0", 4, 0, 2, {2, 2}, {2, 1}};
static const float good_values[4] = {1.5f, -2.0f, 0.25f, 8.0f};

/* Writes archive/data.pkl (pkl), archive/data/0 (storage), archive/version, and extra items. */
static const char *torch_case(const char *file, const Buf *pkl, const void *storage, size_t storage_bytes,
                              const ZipItem *extra, int n_extra) {
    ZipItem items[8] = {{"archive/data.pkl", pkl->p, pkl->len, 0},
                        {"archive/data/0", storage, storage_bytes, 0},
                        {"archive/version", "3\n", 2, 0}};
    for (int i = 0; i < n_extra; i++) items[3 + i] = extra[i];
    Buf zip = {0};
    build_zip(&zip, items, 3 + n_extra);
    const char *path = tmp_path(file);
    write_file(path, zip.p, zip.len);
    free(zip.p);
    return path;
}

static void tensor_case(const char *file, const PickledTensor *t, size_t storage_bytes, const char *needle) {
    Buf pkl = {0};
    pickle_state(&pkl, t);
    const char *path = torch_case(file, &pkl, good_values, storage_bytes, NULL, 0);
    expect_failure(path, KN_EFORMAT, needle);
    free(pkl.p);
}

static void test_bad_torch(void) {
    Buf pkl = {0};
    pickle_state(&pkl, &good_tensor);
    /* first, that the hand-made checkpoint is right, so that each refusal below is for its one defect */
    char good[256];   /* tmp_path()'s buffers are reused */
    snprintf(good, sizeof good, "%s", torch_case("good.bin", &pkl, good_values, sizeof good_values, NULL, 0));
    TensorFile *tf = NULL;
    CHECK_OK(tensorfile_open(&tf, good));
    const TensorInfo *w = tensorfile_find(tf, "w");
    float v[4] = {0};
    CHECK(w && w->ndim == 2 && tensor_to_f32(w, v) == KN_OK && memcmp(v, good_values, sizeof v) == 0);
    tensorfile_close(tf);
    ZipItem little = {"archive/byteorder", "little", 6, 0};
    CHECK_OK(tensorfile_open(&tf, torch_case("little.bin", &pkl, good_values, 16, &little, 1)));
    tensorfile_close(tf);

    ZipItem big = {"archive/byteorder", "big", 3, 0};
    expect_failure(torch_case("big.bin", &pkl, good_values, 16, &big, 1), KN_EFORMAT, "big-endian");
    ZipItem other = {"other/data.pkl", pkl.p, pkl.len, 0};
    expect_failure(torch_case("two.bin", &pkl, good_values, 16, &other, 1), KN_EFORMAT, "several PyTorch archives");

    Buf zip = {0};
    ZipItem plain[] = {{"readme.txt", "hello", 5, 0}, {"data.pkl", pkl.p, pkl.len, 0}};
    build_zip(&zip, plain, 2);
    write_file(tmp_path("plain.zip"), zip.p, zip.len);
    expect_failure(tmp_path("plain.zip"), KN_EFORMAT, "not a PyTorch checkpoint");
    write_file(tmp_path("truncated.zip"), zip.p, zip.len / 2);
    expect_failure(tmp_path("truncated.zip"), KN_EFORMAT, "no zip end-of-central-directory record");
    free(zip.p);

    /* corruptions of the good file, one field at a time */
    char *bytes;
    size_t len;
    CHECK_OK(file_read_all(good, &bytes, &len));
    size_t cd = (size_t)(bytes[len - 6] & 0xff) | (size_t)(bytes[len - 5] & 0xff) << 8;   /* < 64 KiB here */
    char *copy = malloc(len);
    static const struct {
        const char *file;
        int delta;          /* from the central directory's start, or from the end when negative */
        uint8_t flip;       /* XORed into that byte */
        const char *needle;
    } pokes[] = {
        {"cd-signature.bin", 0, 0x08, "central directory entry 0 is corrupted"},
        {"cd-offset.bin", -5, 0x7f, "lies outside the file"},
        {"cd-size.bin", -10, 0x80, "cannot hold"},
        {"local-offset.bin", 42, 0x33, "no local header"},
        {"name-length.bin", 28, 0xf0, "runs past the directory"},
        {"deflated.bin", 10, 8, "zip entry archive/data.pkl is compressed (method 8), which torch.save never does"},
        {"encrypted.bin", 8, 1, "encrypted"},
        {"crc.bin", 16, 0x5a, "fails its CRC-32 check"},
    };
    for (size_t i = 0; i < sizeof pokes / sizeof pokes[0]; i++) {
        memcpy(copy, bytes, len);
        copy[pokes[i].delta >= 0 ? cd + (size_t)pokes[i].delta : len - (size_t)-pokes[i].delta] ^= (char)pokes[i].flip;
        write_file(tmp_path(pokes[i].file), copy, len);
        expect_failure(tmp_path(pokes[i].file), KN_EFORMAT, pokes[i].needle);
    }
    free(copy);
    free(bytes);

    /* data.pkl that is not a pickle, or stops early */
    Buf text = {0};
    put_str(&text, "not a pickle");
    expect_failure(torch_case("text-pkl.bin", &text, good_values, 16, NULL, 0), KN_EFORMAT, "unsupported opcode");
    Buf half = {0};
    put(&half, pkl.p, pkl.len / 2);
    expect_failure(torch_case("half-pkl.bin", &half, good_values, 16, NULL, 0), KN_EFORMAT, "truncated");
    free(text.p);
    free(half.p);

    PickledTensor t = good_tensor;
    t.key = "1";
    tensor_case("no-key.bin", &t, 16, "tensor \"w\": its storage has no zip entry archive/data/1");
    tensor_case("short-storage.bin", &good_tensor, 12, "storage 0 holds 12 bytes, not 4 elements of F32");
    t = good_tensor, t.storage_numel = 3;
    tensor_case("small-storage.bin", &t, 12, "elements [0, 4) lie outside its storage of 3 elements");
    t = good_tensor, t.offset = 1;
    tensor_case("offset.bin", &t, 16, "elements [1, 5) lie outside");
    t = good_tensor, t.stride[0] = 1, t.stride[1] = 2;
    tensor_case("transposed.bin", &t, 16, "\"w\" is not contiguous");
    t = good_tensor, t.storage_type = "ComplexFloatStorage";
    tensor_case("complex.bin", &t, 16, "unsupported storage type torch.ComplexFloatStorage");
    t = good_tensor, t.shape[0] = -2;
    tensor_case("negative.bin", &t, 16, "size is negative");
    Buf none = {0};
    put_str(&none, "N");
    t = good_tensor, t.sixth = &none;   /* the legacy format's view metadata has no place in a zip */
    tensor_case("six.bin", &t, 16, "tensor \"w\": storage is not ('storage', type, key, location, numel)");
    free(none.p);
    free(pkl.p);

    /* a call that is not a tensor is refused, never run; plain values and cycles are skipped */
    Buf evil = {0};
    put_str(&evil, "\x80\x02}(");
    pk_str(&evil, "cmd");
    put_str(&evil, "cos\nsystem\n(");
    pk_str(&evil, "touch /tmp/pwned");
    put_str(&evil, "tRu.");
    expect_failure(torch_case("evil.bin", &evil, good_values, 16, NULL, 0), KN_EFORMAT,
                   "\"cmd\" is built by os.system, which is not a dense tensor");
    free(evil.p);
    Buf nested = {0};
    put_str(&nested, "\x80\x02}(");
    pk_str(&nested, "model");
    put_str(&nested, "}u.");
    expect_failure(torch_case("nested.bin", &nested, good_values, 16, NULL, 0), KN_EFORMAT,
                   "\"model\" holds a dict, not a tensor");
    free(nested.p);
    Buf loop = {0};
    put_str(&loop, "\x80\x02}(");
    pk_str(&loop, "self");
    put(&loop, "]q\0h\0a", 6);   /* a list appended to itself */
    pk_str(&loop, "n");
    pk_int(&loop, 7);
    put_str(&loop, "u.");
    CHECK_OK(tensorfile_open(&tf, torch_case("loop.bin", &loop, good_values, 16, NULL, 0)));
    CHECK_EQ_INT(tensorfile_count(tf), 0);
    tensorfile_close(tf);
    free(loop.p);
}

/* ---- hostile pickles: deep, wide, self-referencing ---- */

static int load_pickle(const Buf *b) {
    Pickle *p = NULL;
    const PickleValue *root = NULL;
    int rc = pickle_load(&p, &root, b->p, b->len, "hostile.pkl");
    CHECK(rc == KN_OK ? root != NULL && p != NULL : root == NULL && p == NULL);
    CHECK(rc == KN_OK || strstr(kn_errmsg(), "hostile.pkl"));
    pickle_free(p);
    return rc;
}

static void test_hostile_pickles(void) {
    enum { N = 1000000 };
    Buf b = {0};
    for (int i = 0; i < N; i++) put(&b, "(", 1);   /* a million MARKs, then nothing to return */
    put(&b, ".", 1);
    CHECK(load_pickle(&b) == KN_EFORMAT && strstr(kn_errmsg(), "stack underflow"));
    b.len = N;
    for (int i = 0; i < N; i++) put(&b, "t", 1);   /* tuples nested a million deep: no recursion anywhere */
    put(&b, ".", 1);
    CHECK(load_pickle(&b) == KN_OK);
    b.len = 0;
    put(&b, "]q\0", 3);   /* (x, x) doubled 200 times: 2^200 leaves if anything walked it */
    for (int i = 0; i < 200; i++) put(&b, "h\0h\0\x86q\0", 7);
    put(&b, ".", 1);
    CHECK(load_pickle(&b) == KN_OK);
    b.len = 0;
    put(&b, "\x80\x02]", 3);
    put(&b, "r\xff\xff\xff\x7f", 5);   /* memo index 2^31 - 1 */
    put(&b, ".", 1);
    CHECK(load_pickle(&b) == KN_EFORMAT && strstr(kn_errmsg(), "implausibly large"));
    b.len = 0;
    put(&b, "\x80\x02X\xff\xff\xff\xff", 7);   /* a 4 GiB string in a 7-byte stream */
    CHECK(load_pickle(&b) == KN_EFORMAT && strstr(kn_errmsg(), "truncated"));
    b.len = 0;
    put(&b, "\x8a\x09" "123456789.", 12);   /* a 72-bit integer stays bytes: no bignum arithmetic */
    Pickle *big = NULL;
    const PickleValue *wide = NULL;
    CHECK_OK(pickle_load(&big, &wide, b.p, b.len, "wide.pkl"));
    CHECK(wide && wide->kind == PV_BIGINT && wide->str.len == 9 && memcmp(wide->str.s, "123456789", 9) == 0);
    pickle_free(big);
    b.len = 0;
    put(&b, "\x8a\x02\xff\x7f\x8a\x01\xff\x86.", 9);   /* LONG1 32767 and -1 */
    Pickle *p = NULL;
    const PickleValue *root = NULL;
    CHECK_OK(pickle_load(&p, &root, b.p, b.len, "long.pkl"));
    CHECK(root->kind == PV_TUPLE && root->seq.count == 2 && root->seq.items[0]->i == 32767 && root->seq.items[1]->i == -1);
    pickle_free(p);
    b.len = 0;
    put(&b, "\x80\x06N.", 4);
    CHECK(load_pickle(&b) == KN_EFORMAT && strstr(kn_errmsg(), "protocol 6"));
    b.len = 0;
    put(&b, "I1\n.", 4);   /* protocol 0's text INT */
    CHECK(load_pickle(&b) == KN_EFORMAT && strstr(kn_errmsg(), "unsupported opcode"));
    free(b.p);
}

/* data.pkl is guarded by its CRC in the file, so its parser is fuzzed here directly, against the real zip. */
static void fuzz_pickle(const char *fixture, int rounds, uint64_t seed) {
    FileMap map;
    TorchZip zip;
    CHECK_OK(file_map(&map, fixture));
    CHECK_OK(torchzip_open(&zip, map.data, map.size, fixture));
    const ZipEntry *pkl = NULL;
    for (size_t i = 0; i < zip.count; i++)
        if (strstr(zip.entries[i].name, "/data.pkl")) pkl = &zip.entries[i];
    CHECK(pkl != NULL);
    if (!pkl) return;
    char archive[64];
    snprintf(archive, sizeof archive, "%.*s", (int)(strchr(pkl->name, '/') - pkl->name + 1), pkl->name);
    size_t len = (size_t)pkl->size;
    uint8_t *buf = malloc(len);
    rng_state = seed;
    int loaded = 0, refused = 0, tensors = 0;
    for (int r = 0; r < rounds; r++) {
        memcpy(buf, pkl->data, len);
        size_t n = len, at[4];
        uint64_t kind = rng() % 8;
        if (kind == 0) {
            n = (size_t)(rng() % len);
        } else if (kind == 1) {   /* splice: a run of opcodes copied over another place */
            size_t from = (size_t)(rng() % len), to = (size_t)(rng() % len), k = 1 + (size_t)(rng() % 64);
            if (k > len - from) k = len - from;
            if (k > len - to) k = len - to;
            memmove(buf + to, buf + from, k);
        } else {
            mutate(buf, len, at);
        }
        Pickle *p = NULL;
        const PickleValue *root = NULL;
        TensorList list = {0};
        int rc = pickle_load(&p, &root, buf, n, "fuzz.pkl");
        if (rc == KN_OK) rc = torchckpt_read_state(&list, root, &zip, archive, fixture);
        if (rc == KN_OK) {
            loaded++;
            for (size_t i = 0; i < list.count; i++) {
                const uint8_t *d = list.items[i].data;
                CHECK(d >= map.data && list.items[i].nbytes <= map.size - (size_t)(d - map.data));
            }
            tensors += (int)list.count;
        } else {
            refused++;
            CHECK(strstr(kn_errmsg(), "fuzz.pkl") || strstr(kn_errmsg(), fixture));
        }
        tensorlist_free(&list);
        pickle_free(p);
    }
    fprintf(stderr, "    %-45s %4d pickles loaded, %4d refused\n", fixture, loaded, refused);
    CHECK(refused > rounds / 20 && loaded > 0);
    free(buf);
    torchzip_close(&zip);
    file_unmap(&map);
}

static void test_fuzz_pickles(void) {
    fuzz_pickle(TINY "pytorch_model.bin", fuzz_rounds(), fuzz_seed(7));
    fuzz_pickle(FIX "p4.bin", fuzz_rounds(), fuzz_seed(8));
}

/* ---- legacy (pre-1.6) checkpoints ---- */

static const uint8_t legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

/* The three pickles before the state dict, as _legacy_save writes them with protocol 2. */
static void legacy_header(Buf *b, int64_t version, int little_endian) {
    put(b, "\x80\x02\x8a\x0a", 4);
    put(b, legacy_magic, sizeof legacy_magic);
    put(b, ".\x80\x02M", 4);
    put_le(b, (uint64_t)version, 2);
    put(b, ".\x80\x02}(", 5);
    pk_str(b, "protocol_version");
    put(b, "M", 1);
    put_le(b, (uint64_t)version, 2);
    pk_str(b, "little_endian");
    put(b, little_endian ? "\x88" : "\x89", 1);
    put_str(b, "u.");
}

typedef struct {
    const char *key;
    int64_t count;        /* the record's element count */
    const void *data;
    size_t bytes;
} LegacyRecord;

/* Header, state (a pickle), the key list and the records, as one file in the scratch folder. */
static const char *legacy_file(const char *file, const Buf *state, const LegacyRecord *recs, int n, int64_t version,
                               int little_endian) {
    Buf b = {0};
    legacy_header(&b, version, little_endian);
    put(&b, state->p, state->len);
    put_str(&b, "\x80\x02](");
    for (int i = 0; i < n; i++) pk_str(&b, recs[i].key);
    put_str(&b, "e.");
    for (int i = 0; i < n; i++) {
        put_le(&b, (uint64_t)recs[i].count, 8);
        put(&b, recs[i].data, recs[i].bytes);
    }
    const char *path = tmp_path(file);
    write_file(path, b.p, b.len);
    free(b.p);
    return path;
}

/* One tensor t over one record of good_values (4 floats unless bytes says fewer). */
static const char *legacy_case(const char *file, const PickledTensor *t, const char *record_key, int64_t count,
                               size_t bytes) {
    Buf state = {0};
    pickle_state(&state, t);
    LegacyRecord rec = {record_key, count, good_values, bytes};
    const char *path = legacy_file(file, &state, &rec, 1, 1001, 1);
    free(state.p);
    return path;
}

/* A tensor's values as floats (it must be F32 with the given count). */
static int values_are(const TensorFile *tf, const char *name, const float *want, int n) {
    const TensorInfo *t = tf ? tensorfile_find(tf, name) : NULL;
    float got[8];
    return t && t->dtype == DTYPE_F32 && tensor_numel(t) == n && n <= 8 && tensor_to_f32(t, got) == KN_OK &&
           memcmp(got, want, (size_t)n * sizeof(float)) == 0;
}

static void test_legacy_by_hand(void) {
    Buf none = {0}, view = {0};
    put_str(&none, "N");
    PickledTensor t = good_tensor;
    t.sixth = &none;
    TensorFile *tf = NULL;
    CHECK_OK(tensorfile_open(&tf, legacy_case("legacy-good.bin", &t, "0", 4, 16)));
    CHECK(values_are(tf, "w", good_values, 4));
    tensorfile_close(tf);

    /* a storage view, as torch before 0.4 wrote it: elements [1, 4) of storage 0, and the tensor at offset 1
     * of the view */
    put_str(&view, "(");
    pk_str(&view, "140000000001");
    pk_int(&view, 1);
    pk_int(&view, 3);
    put_str(&view, "t");
    t.sixth = &view, t.ndim = 1, t.shape[0] = 2, t.stride[0] = 1, t.offset = 1;
    CHECK_OK(tensorfile_open(&tf, legacy_case("legacy-view.bin", &t, "0", 4, 16)));
    CHECK(values_are(tf, "w", good_values + 2, 2));
    tensorfile_close(tf);
    t.offset = 2;   /* [2, 4) of a view of 3 */
    expect_failure(legacy_case("legacy-view-past.bin", &t, "0", 4, 16), KN_EFORMAT,
                   "tensor \"w\": elements [2, 4) lie outside its storage of 3 elements");
    view.len = 0;
    put_str(&view, "(");
    pk_str(&view, "140000000001");
    pk_int(&view, 2);
    pk_int(&view, 3);
    put_str(&view, "t");
    t.offset = 0;
    expect_failure(legacy_case("legacy-view-outside.bin", &t, "0", 4, 16), KN_EFORMAT,
                   "storage view [2, 5) lies outside storage 0 of 4 elements");
    view.len = 0;
    put_str(&view, "(N");
    pk_int(&view, 2);
    put_str(&view, "t");
    expect_failure(legacy_case("legacy-view-bad.bin", &t, "0", 4, 16), KN_EFORMAT,
                   "storage view is not (key, offset, numel)");

    t = good_tensor, t.sixth = &none;
    expect_failure(legacy_case("legacy-unlisted.bin", &t, "1", 4, 16), KN_EFORMAT,
                   "storage 0 is used by the state dict but not in the file's storage list");
    expect_failure(legacy_case("legacy-count.bin", &t, "0", 3, 12), KN_EFORMAT,
                   "storage 0 holds 3 elements, but the state dict says 4");
    expect_failure(legacy_case("legacy-short.bin", &t, "0", 4, 12), KN_EFORMAT,
                   "truncated: storage 0 needs 4 elements of F32 at byte");
    expect_failure(legacy_case("legacy-long.bin", &t, "0", 3, 12), KN_EFORMAT, "holds 3 elements");
    t.key = "0", t.storage_type = "ComplexFloatStorage";
    expect_failure(legacy_case("legacy-complex.bin", &t, "0", 4, 16), KN_EFORMAT,
                   "unsupported storage type torch.ComplexFloatStorage");

    /* key lists that disagree with the ids, two ids that disagree with each other */
    Buf state = {0};
    t = good_tensor, t.sixth = &none;
    pickle_state(&state, &t);
    LegacyRecord two[] = {{"0", 4, good_values, 16}, {"9", 0, "", 0}};
    expect_failure(legacy_file("legacy-extra.bin", &state, two, 2, 1001, 1), KN_EFORMAT,
                   "storage 9 is listed but nothing in the state dict names its type");
    LegacyRecord twice[] = {{"0", 4, good_values, 16}, {"0", 4, good_values, 16}};
    expect_failure(legacy_file("legacy-twice.bin", &state, twice, 2, 1001, 1), KN_EFORMAT,
                   "lists storage 0 twice");
    LegacyRecord one = {"0", 4, good_values, 16};
    expect_failure(legacy_file("legacy-v1000.bin", &state, &one, 1, 1000, 1), KN_EFORMAT,
                   "legacy torch checkpoint of protocol version 1000; only 1001 is known");
    expect_failure(legacy_file("legacy-big.bin", &state, &one, 1, 1001, 0), KN_EFORMAT,
                   "saved on a big-endian machine");
    PickledTensor pair[2] = {t, t};
    pair[1].name = "h", pair[1].storage_type = "HalfStorage";
    state.len = 0;
    pickle_state_n(&state, pair, 2);
    expect_failure(legacy_file("legacy-two-types.bin", &state, &one, 1, 1001, 1), KN_EFORMAT,
                   "storage 0 is named both as 4 elements of F32 and as 4 of F16");
    /* tied: two tensors, one storage */
    pair[1].storage_type = "FloatStorage", pair[1].ndim = 1, pair[1].shape[0] = 3, pair[1].stride[0] = 1;
    pair[1].offset = 1;
    state.len = 0;
    pickle_state_n(&state, pair, 2);
    CHECK_OK(tensorfile_open(&tf, legacy_file("legacy-tied.bin", &state, &one, 1, 1001, 1)));
    CHECK(values_are(tf, "w", good_values, 4) && values_are(tf, "h", good_values + 1, 3));
    tensorfile_close(tf);

    /* a call that is not a tensor is refused, never run */
    state.len = 0;
    put_str(&state, "\x80\x02}(");
    pk_str(&state, "cmd");
    put_str(&state, "cos\nsystem\n(");
    pk_str(&state, "touch /tmp/pwned");
    put_str(&state, "tRu.");
    expect_failure(legacy_file("legacy-evil.bin", &state, NULL, 0, 1001, 1), KN_EFORMAT,
                   "\"cmd\" is built by os.system, which is not a dense tensor");
    state.len = 0;
    put(&state, "\x80\x02]q\x00h\x00" "a.", 9);   /* a list holding itself: not a state dict */
    expect_failure(legacy_file("legacy-list.bin", &state, NULL, 0, 1001, 1), KN_EFORMAT,
                   "the state-dict pickle holds a list, not a state dict");
    free(state.p);

    /* pickles that are not torch's */
    write_file(tmp_path("plain.pkl"), "\x80\x02N.", 4);
    expect_failure(tmp_path("plain.pkl"), KN_EFORMAT, "a pickle, but not a PyTorch checkpoint: it starts with a None");
    write_file(tmp_path("magic-only.pkl"), "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);
    expect_failure(tmp_path("magic-only.pkl"), KN_EFORMAT, "truncated: the file ends before its protocol version");
    free(none.p);
    free(view.p);
}

/* Offsets where each of the five pickles starts, and [5] where the storage records start. */
static void pickle_bounds(const uint8_t *data, size_t len, size_t bounds[6]) {
    bounds[0] = 0;
    for (int i = 0; i < 5; i++) {
        Pickle *p = NULL;
        const PickleValue *root = NULL;
        size_t used = 0;
        CHECK_OK(pickle_load_prefix(&p, &root, &used, data + bounds[i], len - bounds[i], "bounds"));
        pickle_free(p);
        bounds[i + 1] = bounds[i] + used;
    }
}

static size_t find_bytes(const uint8_t *data, size_t from, size_t to, const void *needle, size_t n) {
    for (size_t i = from; i + n <= to; i++)
        if (memcmp(data + i, needle, n) == 0) return i;
    CHECK_MSG(0, "bytes not found in [%zu, %zu)", from, to);
    return from;
}

/* torch's own legacy file, cut at every byte (in memory, through torchlegacy_read) and at the edges of
 * each part (through tensorfile_open), and with one field changed at a time. */
static void check_torch_legacy(const char *fixture) {
    char *text;
    size_t len;
    CHECK_OK(file_read_all(fixture, &text, &len));
    const uint8_t *data = (const uint8_t *)text;
    size_t b[6];
    pickle_bounds(data, len, b);
    CHECK(b[5] < len);
    int truncated = 0;
    for (size_t cut = 0; cut < len; cut++) {
        TensorList list = {0};
        int rc = torchlegacy_read(&list, data, cut, "cut.bin");
        CHECK_MSG(rc == KN_EFORMAT, "cut at %zu: %d", cut, rc);
        const char *msg = kn_errmsg();
        CHECK_MSG(strstr(msg, "cut.bin") && !strchr(msg, '\n'), "cut at %zu: %s", cut, msg);
        truncated += strstr(msg, "truncated") != NULL;
        tensorlist_free(&list);
    }
    CHECK_EQ_INT(truncated, len);   /* every cut is reported as one */
    const size_t cuts[] = {2, 3, b[1] - 1, b[1], b[1] + 1, b[2], b[3] - 1, b[3], b[3] + 20, b[4], b[4] + 1,
                           b[5], b[5] + 7, b[5] + 8, b[5] + 9, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "cut-%zu.bin", cuts[i]);
        write_file(tmp_path(name), data, cuts[i]);
        expect_failure(tmp_path(name), KN_EFORMAT, "truncated");
    }

    uint8_t *copy = malloc(len + 1);
    memcpy(copy, data, len);
    copy[find_bytes(data, b[0], b[1], legacy_magic, sizeof legacy_magic) + 9] ^= 0x01;
    write_file(tmp_path("magic.bin"), copy, len);
    expect_failure(tmp_path("magic.bin"), KN_EFORMAT, "not torch's magic number 0x1950a86a20f9469cfc6c");

    memcpy(copy, data, len);
    copy[find_bytes(data, b[1], b[2], "M\xe9\x03", 3) + 1] = 0xea;
    write_file(tmp_path("version.bin"), copy, len);
    expect_failure(tmp_path("version.bin"), KN_EFORMAT, "protocol version 1002; only 1001 is known");

    memcpy(copy, data, len);
    size_t at = find_bytes(data, b[2], b[3], "little_endian", 13);
    copy[find_bytes(data, at, b[3], "\x88", 1)] = 0x89;   /* True -> False */
    write_file(tmp_path("endian.bin"), copy, len);
    expect_failure(tmp_path("endian.bin"), KN_EFORMAT, "big-endian");

    memcpy(copy, data, len);
    copy[b[5]] ^= 0x01;   /* the first record's element count */
    write_file(tmp_path("count.bin"), copy, len);
    expect_failure(tmp_path("count.bin"), KN_EFORMAT, "elements, but the state dict says");

    memcpy(copy, data, len);
    copy[len] = 0;
    write_file(tmp_path("trailing.bin"), copy, len + 1);
    expect_failure(tmp_path("trailing.bin"), KN_EFORMAT, "1 bytes follow the last storage");

    /* the state-dict pickle's STOP turned into an opcode we refuse: the message gives the file offset */
    memcpy(copy, data, len);
    copy[b[4] - 1] = 'I';
    write_file(tmp_path("opcode.bin"), copy, len);
    char needle[64];
    snprintf(needle, sizeof needle, "state-dict pickle at byte %zu", b[3]);
    expect_failure(tmp_path("opcode.bin"), KN_EFORMAT, needle);
    free(copy);
    free(text);
}

static void test_legacy_torch_files(void) {
    check_torch_legacy(LEGACY "p2.bin");
    check_torch_legacy(LEGACY "p4.bin");
}

/* The tiny-random GPT-2 written in the legacy format from model.safetensors (each tensor its own storage,
 * keys sorted as strings as torch sorts them, lm_head.weight tied to wte as Hugging Face saves it; records
 * packed, so the F32 data is unaligned), loaded as a model: logits equal the safetensors model's exactly. */
static void test_legacy_tiny_gpt2(void) {
    TensorFile *st = NULL;
    CHECK_OK(tensorfile_open(&st, TINY "model.safetensors"));
    if (!st) return;
    size_t n = tensorfile_count(st);
    Buf state = {0}, records = {0};
    put_str(&state, "\x80\x02" "ccollections\nOrderedDict\n)R(");
    char (*keys)[24] = calloc(n, sizeof *keys);
    size_t wte = n;
    /* addresses, as torch's keys are; of one length, so that numeric order is string order */
    for (size_t i = 0; i < n; i++) snprintf(keys[i], sizeof keys[i], "%zu", (size_t)94000000000000 + 16 * i);
    for (size_t k = 0; k <= n; k++) {
        size_t i = k < n ? k : wte;   /* one more entry at the end: lm_head.weight on wte's storage */
        const TensorInfo *t = tensorfile_at(st, i);
        CHECK(t->dtype == DTYPE_F32);
        if (k < n && strcmp(t->name, "transformer.wte.weight") == 0) wte = i;
        pk_str(&state, k < n ? t->name : "lm_head.weight");
        put_str(&state, "ctorch._utils\n_rebuild_tensor_v2\n((");
        pk_str(&state, "storage");
        put_str(&state, "ctorch\nFloatStorage\n");
        pk_str(&state, keys[i]);
        pk_str(&state, "cpu");
        pk_int(&state, tensor_numel(t));
        put_str(&state, "NtQ");
        pk_int(&state, 0);
        int64_t stride[TENSOR_MAX_DIMS], s = 1;
        for (int d = t->ndim - 1; d >= 0; d--) stride[d] = s, s *= t->shape[d];
        pk_ints(&state, t->shape, t->ndim);
        pk_ints(&state, stride, t->ndim);
        put_str(&state, "\x89}tR");
        if (k == n) break;
        put_le(&records, (uint64_t)tensor_numel(t), 8);
        put(&records, t->data, t->nbytes);
    }
    CHECK(wte < n);
    put_str(&state, "u.");
    Buf file = {0};
    legacy_header(&file, 1001, 1);
    put(&file, state.p, state.len);
    put_str(&file, "\x80\x02](");
    for (size_t i = 0; i < n; i++) pk_str(&file, keys[i]);
    put_str(&file, "e.");
    put(&file, records.p, records.len);
    char path[256];
    snprintf(path, sizeof path, "%s", tmp_path("pytorch_model.bin"));
    write_file(path, file.p, file.len);
    free(file.p), free(state.p), free(records.p), free(keys);

    TensorFile *lg = NULL;
    CHECK_OK(tensorfile_open(&lg, path));
    CHECK_EQ_INT(lg ? tensorfile_count(lg) : 0, n + 1);
    const TensorInfo *w = lg ? tensorfile_find(lg, "transformer.h.0.attn.c_attn.weight") : NULL;
    CHECK(w && ((uintptr_t)w->data % 4) != 0);   /* what a real legacy file does too */
    tensorfile_close(lg);
    tensorfile_close(st);

    Gpt2 *a = NULL, *b = NULL;
    CHECK_OK(gpt2_load(&a, "tests/data/tiny-random", TINY "model.safetensors"));
    CHECK_OK(gpt2_load(&b, "tests/data/tiny-random", path));
    if (!a || !b) {
        gpt2_free(a), gpt2_free(b);
        return;
    }
    const Gpt2Config *c = gpt2_config(a);
    enum { T = 16 };
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = (int32_t)((i * 7919 + 13) % c->vocab_size);
    float *logits[2];
    Gpt2 *models[2] = {a, b};
    for (int m = 0; m < 2; m++) {
        Gpt2State *s = NULL;
        CHECK_OK(gpt2_state_create(&s, models[m], T, 0));
        CHECK_OK(gpt2_forward(s, ids, T, GPT2_NEED_FINAL_HIDDEN));
        logits[m] = malloc((size_t)T * c->vocab_size * sizeof(float));
        gpt2_logits(models[m], gpt2_state_output(s, KEY_FINAL_HIDDEN), T, logits[m]);
        gpt2_state_free(s);
    }
    CHECK(memcmp(logits[0], logits[1], (size_t)T * c->vocab_size * sizeof(float)) == 0);
    CHECK(logits[0][0] != 0.0f);
    free(logits[0]), free(logits[1]);
    gpt2_free(a), gpt2_free(b);
}

int main(void) {
    alarm(900);   /* a hang is a failure: SIGALRM ends the run */
    if (tmpdir_create() != 0) return 1;
    RUN(test_bad_torch);
    RUN(test_hostile_pickles);
    RUN(test_fuzz_pickles);
    RUN(test_legacy_by_hand);
    RUN(test_legacy_torch_files);
    RUN(test_legacy_tiny_gpt2);
    tmpdir_remove();
    return TEST_EXIT();
}
