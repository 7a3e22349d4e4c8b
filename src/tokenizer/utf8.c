/* utf8.c — see utf8.h. */
#include "tokenizer/utf8.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

size_t utf8_decode(const uint8_t *s, size_t len, uint32_t *cp) {
    uint8_t b0 = s[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    /* Table 3-7: the lead byte fixes the length and the allowed range of the second byte; every later
     * byte is 80..BF. C0, C1 and F5..FF never start a sequence. */
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    uint32_t value;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 2, value = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 3, value = b0 & 0x0F;
        if (b0 == 0xE0) lo = 0xA0;        /* no overlong forms */
        if (b0 == 0xED) hi = 0x9F;        /* no surrogates */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 4, value = b0 & 0x07;
        if (b0 == 0xF0) lo = 0x90;        /* no overlong forms */
        if (b0 == 0xF4) hi = 0x8F;        /* nothing above U+10FFFF */
    } else {
        *cp = 1;
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= len || s[i] < lo || s[i] > hi) {
            *cp = (uint32_t)i; /* the lead byte and the i-1 good continuation bytes */
            return 0;
        }
        value = value << 6 | (s[i] & 0x3F);
        lo = 0x80, hi = 0xBF;
    }
    *cp = value;
    return need;
}

size_t utf8_find_invalid(const char *s, size_t len) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        /* Text is mostly ASCII or Hangul: skip ASCII eight bytes at a time. */
        while (i + 8 <= len) {
            uint64_t word;
            memcpy(&word, u + i, 8);
            if (word & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= len) break;
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_decode(u + i, len - i, &cp);
        if (n == 0) return i;
        i += n;
    }
    return len;
}

size_t utf8_encode(uint32_t cp, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

const char *utf8_quote(char *out, size_t cap, const char *s) {
    static const char hex[] = "0123456789abcdef";
    size_t at = 0;
    out[at++] = '"';
    for (const uint8_t *p = (const uint8_t *)s; *p; p++) {
        /* Room for the longest escape or character, then '..."' and the NUL. */
        if ((*p & 0xC0) != 0x80 && cap - at < 6 + 5) {
            memcpy(out + at, "...", 3);
            at += 3;
            break;
        }
        if (*p == '"' || *p == '\\') {
            out[at++] = '\\';
            out[at++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7F) {
            out[at++] = '\\';
            switch (*p) {
            case '\n': out[at++] = 'n'; break;
            case '\t': out[at++] = 't'; break;
            case '\r': out[at++] = 'r'; break;
            default:
                memcpy(out + at, "u00", 3);
                at += 3;
                out[at++] = hex[*p >> 4];
                out[at++] = hex[*p & 15];
            }
        } else {
            out[at++] = (char)*p;
        }
    }
    out[at++] = '"';
    out[at] = '\0';
    return out;
}

int bytebuf_reserve(ByteBuf *b, size_t more) {
    if (b->cap - b->len >= more) return KN_OK;
    if (more > SIZE_MAX / 2 - b->len) return kn_error(KN_ENOMEM, "byte buffer: %zu more bytes is too large", more);
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < more) cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data) return kn_error(KN_ENOMEM, "byte buffer: out of memory growing to %zu bytes", cap);
    b->data = data;
    b->cap = cap;
    return KN_OK;
}

int bytebuf_append(ByteBuf *b, const void *data, size_t n) {
    int rc = bytebuf_reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    return KN_OK;
}

int utf8_append_repaired(ByteBuf *out, const char *s, size_t len) {
    /* Each bad byte grows to at most 3 bytes (U+FFFD), so one reservation is enough. */
    if (len > SIZE_MAX / 4) return kn_error(KN_ENOMEM, "text: %zu bytes is too large", len);
    int rc = bytebuf_reserve(out, 3 * len);
    if (rc) return rc;
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode(u + i, len - i, &cp);
        if (n) {
            memcpy(out->data + out->len, u + i, n);
            out->len += n;
            i += n;
        } else {
            memcpy(out->data + out->len, "\xEF\xBF\xBD", 3);
            out->len += 3;
            i += cp;
        }
    }
    return KN_OK;
}
