/* test_torchckpt.c — PyTorch zip checkpoints made by hand, opcode by opcode, each broken in one way (zip
 * structure, pickle, storage), hostile pickles (deep, self-referencing, huge claims), and random corruption
 * of data.pkl fed straight to the unpickler and the state-dict reader (in a file, data.pkl's CRC would
 * catch it first). */
#include "model/pickle.h"
#include "model/torchckpt.h"
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
} PickledTensor;

static void pickle_state(Buf *b, const PickledTensor *t) {
    put_str(b, "\x80\x02" "ccollections\nOrderedDict\n)R(");
    pk_str(b, t->name);
    put_str(b, "ctorch._utils\n_rebuild_tensor_v2\n((");
    pk_str(b, "storage");
    put_str(b, "ctorch\n"), put_str(b, t->storage_type), put_str(b, "\n");
    pk_str(b, t->key);
    pk_str(b, "cpu");
    pk_int(b, t->storage_numel);
    put_str(b, "tQ");
    pk_int(b, t->offset);
    pk_ints(b, t->shape, t->ndim);
    pk_ints(b, t->stride, t->ndim);
    put_str(b, "\x89}tRu.");
}

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

int main(void) {
    alarm(900);   /* a hang is a failure: SIGALRM ends the run */
    if (tmpdir_create() != 0) return 1;
    RUN(test_bad_torch);
    RUN(test_hostile_pickles);
    RUN(test_fuzz_pickles);
    tmpdir_remove();
    return TEST_EXIT();
}
