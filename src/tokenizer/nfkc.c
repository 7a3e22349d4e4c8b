/* nfkc.c — see nfkc.h.
 *
 * Normalisation never reaches across a character that is a starter, neither decomposes nor composes with
 * what precedes it ("a stable starter"): NFKC(xy) = NFKC(x) NFKC(y) when y begins with one. So the text
 * is cut before every stable starter; a chunk that is a single stable starter is copied, and only the
 * other chunks (a starter with the combining marks or jamo after it, a compatibility character, ...)
 * go through utf8proc. The same argument cuts around post-9.0 characters, which Unicode 9.0 sees as
 * unassigned starters that neither decompose nor compose, and around U+11A7 (see passes_through()). */
#include "tokenizer/nfkc.h"

#include <stdlib.h>
#include <utf8proc.h>

#include "util/error.h"
#include "tokenizer/nfkc_post9.h"

int nfkc_is_post9(uint32_t cp) {
    size_t lo = 0, hi = sizeof nfkc_post9_ranges / sizeof nfkc_post9_ranges[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < nfkc_post9_ranges[mid][0]) hi = mid;
        else if (cp > nfkc_post9_ranges[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

/* gen_nfkc_post9.py checks these ranges against the UCD. */
static int is_stable_starter(uint32_t cp) {
    return cp < 0x80 || (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0x4E00 && cp <= 0x9FFF);
}

/* utf8proc on text with no post-9.0 character in it, where 15.0 and 9.0 agree. */
static int normalize_with_utf8proc(ByteBuf *out, const char *s, size_t len) {
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &mapped,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    if (n < 0)
        return kn_error(n == UTF8PROC_ERROR_NOMEM ? KN_ENOMEM : KN_EINVAL, "text: NFKC normalisation failed: %s",
                        utf8proc_errmsg(n));
    int rc = bytebuf_append(out, mapped, (size_t)n);
    free(mapped);
    return rc;
}

/* Characters copied as they are, with the text on either side normalised on its own: the post-9.0 ones,
 * and U+11A7, which composes with nothing, but which utf8proc 2.8 wrongly "composes" with a preceding LV
 * syllable (its Hangul rule accepts a trailing-jamo index of 0), dropping it. */
static int passes_through(uint32_t cp) { return cp == 0x11A7 || nfkc_is_post9(cp); }

/* A chunk that is not one stable starter: characters that pass through are copied, the runs between
 * them are normalised on their own. */
static int normalize_chunk(ByteBuf *out, const char *s, size_t len) {
    const uint8_t *u = (const uint8_t *)s;
    size_t run = 0, i = 0;
    int rc = KN_OK;
    while (i < len && rc == KN_OK) {
        uint32_t cp;
        size_t n = utf8_decode_valid(u + i, &cp);
        if (passes_through(cp)) {
            if (i > run) rc = normalize_with_utf8proc(out, s + run, i - run);
            if (rc == KN_OK) rc = bytebuf_append(out, s + i, n);
            run = i + n;
        }
        i += n;
    }
    if (rc == KN_OK && len > run) rc = normalize_with_utf8proc(out, s + run, len - run);
    return rc;
}

int nfkc_append(ByteBuf *out, const char *s, size_t len) {
    const uint8_t *u = (const uint8_t *)s;
    size_t copied = 0;      /* s[0..copied) is in out already */
    size_t chunk = 0;       /* where the chunk holding s[i] begins */
    int chunk_is_one = 1;   /* s[chunk..i) is a single stable starter, or empty */
    int rc = KN_OK;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_decode_valid(u + i, &cp);
        if (is_stable_starter(cp)) {
            if (!chunk_is_one) {
                rc = bytebuf_append(out, s + copied, chunk - copied);
                if (rc == KN_OK) rc = normalize_chunk(out, s + chunk, i - chunk);
                if (rc) return rc;
                copied = i;
            }
            chunk = i;
            chunk_is_one = 1;
        } else {
            chunk_is_one = 0;
        }
        i += n;
    }
    if (!chunk_is_one) {
        rc = bytebuf_append(out, s + copied, chunk - copied);
        if (rc == KN_OK) rc = normalize_chunk(out, s + chunk, len - chunk);
        return rc;
    }
    return bytebuf_append(out, s + copied, len - copied);
}
