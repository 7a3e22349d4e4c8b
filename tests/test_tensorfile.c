/* test_tensorfile.c — checkpoints (safetensors, torch.save zip) against PyTorch's reading of them, the
 * half/bfloat16 conversions against hand-computed bit patterns, broken safetensors headers, and thousands
 * of random corruptions of every fixture that must each load or fail with a message naming the file.
 * test_torchckpt.c covers hand-made broken torch checkpoints and hostile pickles. */
#include "tensorfile_testkit.h"

#include <cjson/cJSON.h>
#include <fcntl.h>

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- half and bfloat16 ---- */

static void test_f16_by_hand(void) {
    /* bit patterns from IEEE 754 binary16: 1 + 5 exponent (bias 15) + 10 mantissa bits */
    CHECK(f16_to_f32(0x3c00) == 1.0f);
    CHECK(f16_to_f32(0xc000) == -2.0f);
    CHECK(f16_to_f32(0x7bff) == 65504.0f);
    CHECK(f16_to_f32(0x0400) == 0x1p-14f);               /* smallest normal */
    CHECK(f16_to_f32(0x0001) == 0x1p-24f);               /* smallest subnormal */
    CHECK(f16_to_f32(0x03ff) == 1023 * 0x1p-24f);        /* largest subnormal */
    CHECK(bits_of(f16_to_f32(0x8000)) == 0x80000000u);   /* -0 */
    CHECK(f16_to_f32(0x7c00) == INFINITY && f16_to_f32(0xfc00) == -INFINITY);
    CHECK(isnan(f16_to_f32(0x7e00)) && isnan(f16_to_f32(0x7c01)));
    CHECK_EQ_INT(bits_of(f16_to_f32(0x7c01)), 0x7f802000);   /* signalling payload kept, not quietened */

    CHECK_EQ_INT(f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_INT(f32_to_f16(-0.0f), 0x8000);
    CHECK_EQ_INT(f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ_INT(f32_to_f16(65519.99f), 0x7bff);            /* below the midpoint to 65536 */
    CHECK_EQ_INT(f32_to_f16(65520.0f), 0x7c00);             /* the midpoint: ties to even, which is inf */
    CHECK_EQ_INT(f32_to_f16(1e10f), 0x7c00);
    CHECK_EQ_INT(f32_to_f16(-INFINITY), 0xfc00);
    CHECK_EQ_INT(f32_to_f16(NAN), 0x7e00);
    CHECK_EQ_INT(f32_to_f16(-NAN), 0xfe00);
    CHECK_EQ_INT(f32_to_f16(float_of(0x7f800001)), 0x7e00);   /* a NaN whose payload would shift out */
    CHECK_EQ_INT(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);      /* tie between 0x3c00 and 0x3c01: even */
    CHECK_EQ_INT(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);  /* tie between 0x3c01 and 0x3c02: even */
    CHECK_EQ_INT(f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);   /* just above the tie */
    CHECK_EQ_INT(f32_to_f16(1.0f - 0x1p-12f), 0x3c00);      /* tie between 0x3bff and 0x3c00: carry into exp */
    CHECK_EQ_INT(f32_to_f16(0x1p-24f), 0x0001);
    CHECK_EQ_INT(f32_to_f16(0x1p-25f), 0x0000);             /* half the smallest subnormal: ties to 0 */
    CHECK_EQ_INT(f32_to_f16(-0x1p-25f), 0x8000);
    CHECK_EQ_INT(f32_to_f16(0x1p-25f * 1.0000001f), 0x0001);
    CHECK_EQ_INT(f32_to_f16(3 * 0x1p-25f), 0x0002);         /* 1.5 units: ties to 2 */
    CHECK_EQ_INT(f32_to_f16(5 * 0x1p-25f), 0x0002);         /* 2.5 units: ties to 2 */
    CHECK_EQ_INT(f32_to_f16(1023.5f * 0x1p-24f), 0x0400);   /* largest subnormal + half: up to the normal */
    CHECK_EQ_INT(f32_to_f16(0x1p-30f), 0x0000);
    CHECK_EQ_INT(f32_to_f16(float_of(0x00000001)), 0x0000);   /* a float subnormal */
}

/* Every half survives a round trip, and every midpoint between neighbours rounds to the even one. */
static void test_f16_exhaustive(void) {
    int bad_trip = 0, bad_mid = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;   /* NaN */
        if (f32_to_f16(f16_to_f32((uint16_t)h)) != h) bad_trip++;
        if ((h & 0x7fff) >= 0x7c00) continue;
        /* halves and their midpoints are exact in float: 11 significant bits, plus one */
        float lo = f16_to_f32((uint16_t)h), hi = f16_to_f32((uint16_t)(h + 1));
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if ((h & 0x7fff) == 0x7bff) hi = (h & 0x8000) ? -65536.0f : 65536.0f;   /* next would be inf */
        if (f32_to_f16((lo + hi) / 2) != even) bad_mid++;
    }
    CHECK_EQ_INT(bad_trip, 0);
    CHECK_EQ_INT(bad_mid, 0);
}

static void test_bf16(void) {
    CHECK(bf16_to_f32(0x3f80) == 1.0f);
    CHECK(bf16_to_f32(0xc040) == -3.0f);
    CHECK(bf16_to_f32(0x0001) == 0x1p-133f);   /* subnormal: 2^-126 * 2^-7 */
    CHECK(bf16_to_f32(0x7f80) == INFINITY && isnan(bf16_to_f32(0x7fc0)));
    CHECK_EQ_INT(bits_of(bf16_to_f32(0x8000)), 0x80000000u);
    CHECK_EQ_INT(f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);            /* tie: even */
    CHECK_EQ_INT(f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);        /* tie: even */
    CHECK_EQ_INT(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    CHECK_EQ_INT(f32_to_bf16(float_of(0x7f7fffff)), 0x7f80);      /* FLT_MAX rounds up to inf */
    CHECK_EQ_INT(f32_to_bf16(float_of(0x00008000)), 0x0000);      /* float subnormal tie: even */
    CHECK_EQ_INT(f32_to_bf16(float_of(0x00018000)), 0x0002);
    CHECK_EQ_INT(f32_to_bf16(-0.0f), 0x8000);
    CHECK_EQ_INT(f32_to_bf16(NAN), 0x7fc0);
    CHECK_EQ_INT(f32_to_bf16(float_of(0x7f800001)), 0x7fc0);      /* would truncate to inf without care */
    int bad = 0;
    for (uint32_t b = 0; b < 0x10000; b++) {
        if ((b & 0x7f80) == 0x7f80 && (b & 0x7f)) continue;
        if (f32_to_bf16(bf16_to_f32((uint16_t)b)) != b) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

/* ---- the tiny-random checkpoints: one set of weights in three files ---- */


static void test_tiny_random(void) {
    TensorFile *st = NULL, *f16 = NULL, *pt = NULL;
    CHECK_OK(tensorfile_open(&st, TINY "model.safetensors"));
    CHECK_OK(tensorfile_open(&f16, TINY "model-f16.safetensors"));
    CHECK_OK(tensorfile_open(&pt, TINY "pytorch_model.bin"));
    CHECK_STR(tensorfile_format(st), "safetensors");
    CHECK_STR(tensorfile_format(pt), "pytorch");
    CHECK_STR(tensorfile_path(pt), TINY "pytorch_model.bin");
    /* 2 layers x 12 + wte, wpe, ln_f (2) + 2 attn.bias buffers; the .bin adds lm_head.weight */
    CHECK_EQ_INT(tensorfile_count(st), 30);
    CHECK_EQ_INT(tensorfile_count(f16), 30);
    CHECK_EQ_INT(tensorfile_count(pt), 31);
    CHECK(tensorfile_find(st, "lm_head.weight") == NULL);
    CHECK(tensorfile_find(st, "wte.weight") == NULL);

    size_t compared = 0;
    for (size_t i = 0; i < tensorfile_count(pt); i++) {
        const TensorInfo *p = tensorfile_at(pt, i);
        if (strcmp(p->name, "lm_head.weight") == 0) continue;
        const TensorInfo *s = tensorfile_find(st, p->name), *h = tensorfile_find(f16, p->name);
        CHECK_MSG(s && h, "%s missing from the safetensors files", p->name);
        if (!s || !h) continue;
        CHECK(s->dtype == DTYPE_F32 && p->dtype == DTYPE_F32 && h->dtype == DTYPE_F16);
        CHECK_EQ_INT(s->ndim, p->ndim);
        CHECK(memcmp(s->shape, p->shape, sizeof s->shape) == 0 && memcmp(h->shape, p->shape, sizeof h->shape) == 0);
        CHECK_EQ_INT(s->nbytes, p->nbytes);
        CHECK_MSG(memcmp(s->data, p->data, s->nbytes) == 0, "%s differs between the two F32 files", p->name);
        /* The F16 file is torch's .half() of the F32 weights: our narrowing must give the same bits. */
        size_t n = (size_t)tensor_numel(h), mismatches = 0;
        float *wide = malloc(n * sizeof *wide), *narrow = malloc(n * sizeof *narrow);
        CHECK_OK(tensor_to_f32(s, wide));
        CHECK_OK(tensor_to_f32(h, narrow));
        for (size_t k = 0; k < n; k++) {
            uint16_t bits;
            memcpy(&bits, (const uint8_t *)h->data + 2 * k, 2);
            if (bits != f32_to_f16(wide[k]) || fabsf(narrow[k] - wide[k]) > fabsf(wide[k]) * 0x1p-11f + 0x1p-25f)
                mismatches++;
        }
        CHECK_MSG(mismatches == 0, "%s: %zu F16 values are not f32_to_f16 of the F32 ones", p->name, mismatches);
        free(wide);
        free(narrow);
        compared++;
    }
    CHECK_EQ_INT(compared, 30);
    for (size_t i = 0; i < tensorfile_count(st); i++) CHECK(tensorfile_find(pt, tensorfile_at(st, i)->name));

    const TensorInfo *wte = tensorfile_find(pt, "transformer.wte.weight"), *lm = tensorfile_find(pt, "lm_head.weight");
    CHECK(wte && lm);
    if (wte && lm) {
        CHECK(lm->data == wte->data);   /* one storage */
        CHECK(lm->shape[0] == 51200 && lm->shape[1] == 64 && lm->nbytes == wte->nbytes);
    }
    /* Values read independently: torch.load(pytorch_model.bin)[name][index].item(), as hex floats. */
    static const struct {
        const char *name;
        size_t index;
        float value;
    } known[] = {
        {"transformer.wte.weight", 0, -0x1.0cbddep-6f},
        {"transformer.wte.weight", 51199 * 64 + 63, 0x1.39b8a4p-6f},
        {"transformer.wpe.weight", 127 * 64 + 1, 0x1.6136ep-7f},
        {"transformer.h.1.mlp.c_proj.bias", 5, -0x1.302e1ep-5f},
        {"transformer.ln_f.weight", 0, 0x1.040858p+0f},
        {"transformer.h.0.attn.c_attn.weight", 63 * 192 + 191, 0x1.363126p-4f},
        {"transformer.h.0.attn.bias", 5 * 128 + 3, 1.0f},
    };
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        TensorFile *files[] = {st, pt};
        for (int f = 0; f < 2; f++) {
            const TensorInfo *t = tensorfile_find(files[f], known[k].name);
            float v = NAN;
            if (t) memcpy(&v, (const uint8_t *)t->data + 4 * known[k].index, 4);
            CHECK_MSG(v == known[k].value, "%s[%zu] = %.9g in %s, torch says %.9g", known[k].name, known[k].index, v,
                      tensorfile_path(files[f]), known[k].value);
        }
    }
    /* numpy.frombuffer(..., float16).view(uint16) of the F16 file */
    const TensorInfo *h = tensorfile_find(f16, "transformer.wte.weight");
    uint16_t bits = 0;
    if (h) memcpy(&bits, h->data, 2);
    CHECK_EQ_INT(bits, 0xa433);
    CHECK(f16_to_f32(bits) == -0.0164031982421875f);
    tensorfile_close(st);
    tensorfile_close(f16);
    tensorfile_close(pt);
}

static void test_tiny_kogpt2_unprefixed(void) {
    TensorFile *tf = NULL;
    CHECK_OK(tensorfile_open(&tf, "models/tiny-kogpt2/model-f16.safetensors"));
    CHECK_EQ_INT(tensorfile_count(tf), 52);   /* 4 layers x 12 + wte, wpe, ln_f.{weight,bias} */
    const TensorInfo *wte = tensorfile_find(tf, "wte.weight");
    CHECK(tensorfile_find(tf, "transformer.wte.weight") == NULL);
    CHECK(wte && wte->dtype == DTYPE_F16 && wte->ndim == 2 && wte->shape[0] == 51200 && wte->shape[1] == 128);
    if (wte) {
        float *w = malloc(51200 * 128 * sizeof *w);
        CHECK_OK(tensor_to_f32(wte, w));
        CHECK(w[0] == 0.11956787109375f);                  /* numpy: 0x2fa7 */
        CHECK(w[51200 * 128 - 1] == -0.08392333984375f);    /* numpy: 0xad5f */
        free(w);
    }
    const TensorInfo *b = tensorfile_find(tf, "ln_f.bias");
    float v[128];
    CHECK(b && tensor_to_f32(b, v) == KN_OK && v[3] == 0.00792694091796875f);   /* numpy: 0x200f */
    tensorfile_close(tf);
}

/* ---- the small fixtures against expected.json (make_fixtures.py: what torch.load returns) ---- */

static double element(const TensorInfo *t, size_t i) {
    const uint8_t *p = (const uint8_t *)t->data + i * dtype_size(t->dtype);
    union { float f; double d; int64_t i64; int32_t i32; int16_t i16; int8_t i8; uint8_t u8; uint16_t u16; } u;
    memcpy(&u, p, dtype_size(t->dtype));
    switch (t->dtype) {
    case DTYPE_F32: return u.f;
    case DTYPE_F16: return f16_to_f32(u.u16);
    case DTYPE_BF16: return bf16_to_f32(u.u16);
    case DTYPE_F64: return u.d;
    case DTYPE_I64: return (double)u.i64;
    case DTYPE_I32: return u.i32;
    case DTYPE_I16: return u.i16;
    case DTYPE_I8: return u.i8;
    case DTYPE_U8: case DTYPE_BOOL: return u.u8;
    }
    return NAN;
}

static const char *torch_dtype(DType dt) {
    static const char *names[] = {"float32", "float16", "bfloat16", "float64", "int64",
                                  "int32",   "int16",   "int8",     "uint8",   "bool"};
    return names[dt];
}

static void check_against_expected(const char *path, const cJSON *expected, int with_views) {
    TensorFile *tf = NULL;
    CHECK_OK(tensorfile_open(&tf, path));
    int n = 0;
    for (const cJSON *e = expected->child; e; e = e->next) {
        int view = !strcmp(e->string, "row1") || !strcmp(e->string, "tied") || !strcmp(e->string, "odd_stride");
        if (view && !with_views) continue;
        n++;
        const TensorInfo *t = tensorfile_find(tf, e->string);
        CHECK_MSG(t, "%s: %s missing", path, e->string);
        if (!t) continue;
        CHECK_STR(torch_dtype(t->dtype), cJSON_GetObjectItem(e, "dtype")->valuestring);
        const cJSON *shape = cJSON_GetObjectItem(e, "shape"), *values = cJSON_GetObjectItem(e, "values");
        CHECK_EQ_INT(t->ndim, cJSON_GetArraySize(shape));
        for (int d = 0; d < t->ndim && d < cJSON_GetArraySize(shape); d++)
            CHECK_EQ_INT(t->shape[d], cJSON_GetArrayItem(shape, d)->valuedouble);
        CHECK_EQ_INT(tensor_numel(t), cJSON_GetArraySize(values));
        CHECK_EQ_INT(t->nbytes, (size_t)tensor_numel(t) * dtype_size(t->dtype));
        size_t i = 0, bad = 0;
        for (const cJSON *v = values->child; v && i < (size_t)tensor_numel(t); v = v->next, i++)
            if (element(t, i) != v->valuedouble) bad++;
        CHECK_MSG(bad == 0, "%s: %s: %zu values differ from torch's", path, e->string, bad);
    }
    CHECK_EQ_INT(tensorfile_count(tf), n);   /* and nothing else: the int "count" is skipped */
    if (with_views) {
        const TensorInfo *base = tensorfile_find(tf, "base"), *row1 = tensorfile_find(tf, "row1"),
                         *tied = tensorfile_find(tf, "tied");
        CHECK(base && row1 && tied && tied->data == base->data && (const uint8_t *)row1->data == (const uint8_t *)base->data + 16);
    }
    const TensorInfo *f64 = tensorfile_find(tf, "f64");
    float out[3];
    CHECK(f64 && tensor_to_f32(f64, out) == KN_EINVAL && strstr(kn_errmsg(), "f64"));
    const TensorInfo *empty = tensorfile_find(tf, "empty");
    CHECK(empty && empty->nbytes == 0 && tensor_to_f32(empty, out) == KN_OK);
    tensorfile_close(tf);
}

static void test_fixtures(void) {
    char *text;
    size_t len;
    CHECK_OK(file_read_all(FIX "expected.json", &text, &len));
    cJSON *expected = cJSON_Parse(text);
    free(text);
    CHECK(expected && cJSON_GetArraySize(expected) == 17);
    if (!expected) return;
    check_against_expected(FIX "p2.bin", expected, 1);
    check_against_expected(FIX "p4.bin", expected, 1);
    check_against_expected(FIX "zip64.bin", expected, 1);
    check_against_expected(LEGACY "p2.bin", expected, 1);   /* the same state dict, legacy format */
    check_against_expected(LEGACY "p4.bin", expected, 1);
    check_against_expected(FIX "mixed.safetensors", expected, 0);
    cJSON_Delete(expected);

    /* {"w": torch.ones(2)} in the legacy format, which we used to refuse */
    TensorFile *tf = NULL;
    CHECK_OK(tensorfile_open(&tf, FIX "legacy.bin"));
    const TensorInfo *w = tf ? tensorfile_find(tf, "w") : NULL;
    float v[2] = {0};
    CHECK(w && w->dtype == DTYPE_F32 && w->ndim == 1 && w->shape[0] == 2 && tensor_to_f32(w, v) == KN_OK);
    CHECK(v[0] == 1.0f && v[1] == 1.0f && tensorfile_count(tf) == 1);
    CHECK_STR(tf ? tensorfile_format(tf) : "", "pytorch");
    tensorfile_close(tf);
}

/* ---- files that must be refused, each with a message naming the file and the problem ---- */

static void test_fixture_refusals(void) {
    expect_failure(FIX "noncontig.bin", KN_EFORMAT, "\"w\" is not contiguous");
    expect_failure(tmp_path("no-such-file"), KN_ENOTFOUND, "cannot open");
    expect_failure(tmpdir, KN_EINVAL, "not a regular file");
}

static void safetensors_case(const char *name, const char *json, size_t data_bytes, const char *needle) {
    Buf b = {0};
    put_le(&b, strlen(json), 8);
    put_str(&b, json);
    for (size_t i = 0; i < data_bytes; i++) put(&b, "\x01", 1);
    write_file(tmp_path(name), b.p, b.len);
    expect_failure(tmp_path(name), KN_EFORMAT, needle);
    free(b.p);
}

static void test_bad_safetensors(void) {
    write_file(tmp_path("empty"), "", 0);
    expect_failure(tmp_path("empty"), KN_EFORMAT, "empty file");
    write_file(tmp_path("short"), "\x10\0\0\0\0", 5);
    expect_failure(tmp_path("short"), KN_EFORMAT, "too short");
    write_file(tmp_path("past-end"), "\xe8\x03\0\0\0\0\0\0{\"a\":{}}", 16);
    expect_failure(tmp_path("past-end"), KN_EFORMAT, "runs past the end of the file");
    write_file(tmp_path("huge-n"), "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);
    expect_failure(tmp_path("huge-n"), KN_EFORMAT, "larger than the limit");

#define F32_2 "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
    safetensors_case("invalid-json", "{\"a\":{\"dtype\":", 0, "not valid JSON");
    safetensors_case("not-object", "[1,2]", 0, "does not start with '{'");
    safetensors_case("trailing", "{}  x", 0, "bytes after its JSON object");
    safetensors_case("bad-utf8", "{\"\xff\":{}}", 0, "not valid UTF-8");
    safetensors_case("entry-not-object", "{\"a\":[1]}", 0, "\"a\" is not a JSON object");
    safetensors_case("no-dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "lacks \"dtype\"");
    safetensors_case("past-data", "{\"a\":" F32_2 "}", 4, "run past the end of the data");
    safetensors_case("short-offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "need 12");
    safetensors_case("reversed", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, "end before");
    safetensors_case("unknown-dtype", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
                     "unsupported dtype \"F8_E4M3\"");
    safetensors_case("negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0,
                     "shape[0] is not a non-negative integer");
    safetensors_case("fraction", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,6]}}", 6,
                     "shape[0] is not a non-negative integer");
    safetensors_case("too-big-int", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1e300],\"data_offsets\":[0,0]}}", 0,
                     "shape[0] is not a non-negative integer");
    safetensors_case("nine-dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
                     4, "9 dimensions");
    /* 2^32 * 2^32 * 16 overflows 64 bits; so does its byte count */
    safetensors_case("overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,0]}}",
                     0, "byte count overflows");
    safetensors_case("overlap", "{\"a\":" F32_2 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
                     "overlap");
    safetensors_case("gap", "{\"a\":" F32_2 ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16,
                     "leave a gap");
    safetensors_case("extra-data", "{\"a\":" F32_2 "}", 9, "cover 8 bytes of data but 9 follow");
    safetensors_case("duplicate", "{\"a\":" F32_2 ",\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                     16, "\"a\" appears twice");
    safetensors_case("metadata", "{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ \"k\" is not a string");

    /* and what must be accepted: trailing spaces, a scalar, an empty tensor, no tensors at all */
    Buf b = {0};
    const char *json = "{\"s\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[0,2]},"
                       "\"e\":{\"dtype\":\"I64\",\"shape\":[3,0],\"data_offsets\":[2,2]}}   ";
    put_le(&b, strlen(json), 8);
    put_str(&b, json);
    put(&b, "\x80\x3f", 2);   /* bf16 1.0 */
    write_file(tmp_path("good.safetensors"), b.p, b.len);
    free(b.p);
    TensorFile *tf = NULL;
    CHECK_OK(tensorfile_open(&tf, tmp_path("good.safetensors")));
    const TensorInfo *s = tensorfile_find(tf, "s");
    float one = 0;
    CHECK(s && s->ndim == 0 && tensor_numel(s) == 1 && tensor_to_f32(s, &one) == KN_OK && one == 1.0f);
    CHECK(tensorfile_find(tf, "e") && tensorfile_find(tf, "e")->nbytes == 0);
    tensorfile_close(tf);
    write_file(tmp_path("none.safetensors"), "\x02\0\0\0\0\0\0\0{}", 10);
    CHECK_OK(tensorfile_open(&tf, tmp_path("none.safetensors")));
    CHECK_EQ_INT(tensorfile_count(tf), 0);
    tensorfile_close(tf);
}

static void open_mutant(const char *path, int *loaded, int *refused) {
    TensorFile *tf = NULL;
    int rc = tensorfile_open(&tf, path);
    if (rc != KN_OK) {
        (*refused)++;
        CHECK_MSG(tf == NULL && strstr(kn_errmsg(), path) && !strchr(kn_errmsg(), '\n'), "bad refusal: %s", kn_errmsg());
        return;
    }
    (*loaded)++;
    volatile uint8_t sink = 0;   /* touch each tensor's first and last byte: they must be mapped */
    for (size_t i = 0; i < tensorfile_count(tf); i++) {
        const TensorInfo *t = tensorfile_at(tf, i);
        if (t->nbytes) sink ^= ((const uint8_t *)t->data)[0] ^ ((const uint8_t *)t->data)[t->nbytes - 1];
        if (tensorfile_find(tf, t->name) != t) CHECK(!"lookup by name finds another tensor");
    }
    (void)sink;
    tensorfile_close(tf);
}

static void fuzz_file(const char *fixture, int rounds, uint64_t seed) {
    char *orig;
    size_t len;
    CHECK_OK(file_read_all(fixture, &orig, &len));
    const char *path = tmp_path("mutant");
    write_file(path, orig, len);
    int fd = open(path, O_RDWR);
    uint8_t *buf = malloc(len);
    memcpy(buf, orig, len);
    rng_state = seed;
    int loaded = 0, refused = 0;
    for (int r = 0; r < rounds; r++) {
        if (len <= 65536 && rng() % 8 == 0) {   /* truncation */
            CHECK(ftruncate(fd, (off_t)(rng() % len)) == 0);
            open_mutant(path, &loaded, &refused);
            CHECK(pwrite(fd, orig, len, 0) == (ssize_t)len);
            continue;
        }
        size_t at[4];
        int n = mutate(buf, len, at);
        for (int i = 0; i < n; i++) {   /* at most 4 bytes changed at each place */
            size_t k = len - at[i] < 4 ? len - at[i] : 4;
            CHECK(pwrite(fd, buf + at[i], k, (off_t)at[i]) == (ssize_t)k);
        }
        open_mutant(path, &loaded, &refused);
        for (int i = 0; i < n; i++) {
            size_t k = len - at[i] < 4 ? len - at[i] : 4;
            memcpy(buf + at[i], orig + at[i], k);
            CHECK(pwrite(fd, orig + at[i], k, (off_t)at[i]) == (ssize_t)k);
        }
    }
    close(fd);
    fprintf(stderr, "    %-45s %4d mutants loaded, %4d refused\n", fixture, loaded, refused);
    CHECK(refused > rounds / 20);   /* the mutations reach the structure */
    free(buf);
    free(orig);
}

static void test_fuzz_files(void) {
    fuzz_file(TINY "model.safetensors", fuzz_rounds(), fuzz_seed(1));
    fuzz_file(TINY "model-f16.safetensors", fuzz_rounds(), fuzz_seed(2));
    fuzz_file(TINY "pytorch_model.bin", fuzz_rounds(), fuzz_seed(3));
    fuzz_file(FIX "p4.bin", fuzz_rounds(), fuzz_seed(4));
    fuzz_file(FIX "zip64.bin", fuzz_rounds(), fuzz_seed(5));
    fuzz_file(LEGACY "p2.bin", fuzz_rounds(), fuzz_seed(9));
    fuzz_file(FIX "mixed.safetensors", fuzz_rounds(), fuzz_seed(6));
}

int main(void) {
    alarm(900);   /* a hang is a failure: SIGALRM ends the run */
    if (tmpdir_create() != 0) return 1;
    RUN(test_f16_by_hand);
    RUN(test_f16_exhaustive);
    RUN(test_bf16);
    RUN(test_tiny_random);
    RUN(test_tiny_kogpt2_unprefixed);
    RUN(test_fixtures);
    RUN(test_fixture_refusals);
    RUN(test_bad_safetensors);
    RUN(test_fuzz_files);
    tmpdir_remove();
    return TEST_EXIT();
}
