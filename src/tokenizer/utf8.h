/* utf8.h — UTF-8 validation, decoding and U+FFFD repair, and the growable byte buffer the tokenizer
 * builds its strings in.
 *
 * "Well-formed" is Unicode's Table 3-7: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF. Repair follows Unicode's "maximal subpart" practice, which is what Python's
 * bytes.decode("utf-8", errors="replace") does: a lead byte and the continuation bytes that could still
 * have completed it become one U+FFFD; any other bad byte becomes one U+FFFD on its own. */
#ifndef KN_TOKENIZER_UTF8_H
#define KN_TOKENIZER_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The scalar value of a well-formed sequence at s[0..len), len >= 1. Returns its length in bytes (1..4)
 * and sets *cp; or returns 0 when s does not start with a well-formed sequence, and then *cp is the
 * length of the maximal subpart to replace with one U+FFFD (1..3). */
size_t utf8_decode(const uint8_t *s, size_t len, uint32_t *cp);

/* utf8_decode() for text known to be well-formed (s holds a whole sequence): no checks, so it is fast. */
static inline size_t utf8_decode_valid(const uint8_t *s, uint32_t *cp) {
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] < 0xE0) {
        *cp = (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
        return 2;
    }
    if (s[0] < 0xF0) {
        *cp = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        return 3;
    }
    *cp = (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    return 4;
}

/* The offset of the first byte of s[0..len) that does not start a well-formed sequence, or len when the
 * whole of s is well-formed. */
size_t utf8_find_invalid(const char *s, size_t len);

/* Writes cp (a scalar value) as UTF-8 into out (at least 4 bytes); returns the length written. */
size_t utf8_encode(uint32_t cp, char *out);

/* Writes s (NUL-terminated) into out[0..cap) as a double-quoted string for an error message: one line
 * (control characters, '"' and '\\' escaped as in JSON, other bytes as they are), cut with "..." when
 * longer than cap allows (never inside a character). cap must be at least 16. Returns out. */
const char *utf8_quote(char *out, size_t cap, const char *s);

/* A growable byte string. {0} is an empty buffer; free data when done. Not NUL-terminated unless the
 * code that fills it says so. */
typedef struct {
    char *data;
    size_t len, cap;
} ByteBuf;

/* Makes room for `more` bytes after len. KN_OK or KN_ENOMEM (with a message). */
int bytebuf_reserve(ByteBuf *b, size_t more);

/* Appends n bytes. KN_OK or KN_ENOMEM. */
int bytebuf_append(ByteBuf *b, const void *data, size_t n);

/* Appends s[0..len) to out with every maximal invalid subsequence replaced by U+FFFD (EF BF BD). */
int utf8_append_repaired(ByteBuf *out, const char *s, size_t len);

#endif
