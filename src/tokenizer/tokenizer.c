/* tokenizer.c — see tokenizer.h. Loading and validating tokenizer.json, the encoding pipeline around the
 * BPE model (added tokens, NFKC, Metaspace) and the Metaspace decoder. */
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/bpe.h"
#include "tokenizer/nfkc.h"
#include "tokenizer/utf8.h"
#include "util/error.h"
#include "util/file.h"

enum PrependScheme { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };

typedef struct {
    char replacement[5];    /* one UTF-8 character, NUL-terminated ("▁") */
    size_t replacement_len;
    enum PrependScheme prepend;
    int split;
} Metaspace;

/* The added tokens as a byte trie: root_child[first byte], then first-child / next-sibling lists (the
 * deeper levels are rarely walked: only where a byte that starts some added token is seen). */
typedef struct {
    int32_t token_id;       /* the added token that ends here, or -1 */
    int32_t first_child;    /* node index, 0 for none (node 0 is the root) */
    int32_t next_sibling;
    uint8_t byte;
} TrieNode;

struct Tokenizer {
    Bpe *bpe;
    int32_t n_ids;          /* the model's vocabulary, then added tokens outside it */
    char **extra_tokens;    /* [n_ids - bpe_vocab_size]: the added tokens outside the vocabulary */
    uint8_t *special;       /* [n_ids] */
    int32_t root_child[256];
    TrieNode *trie;
    size_t trie_len, trie_cap;
    int nfkc;               /* the normalizer is NFKC (else there is none) */
    Metaspace pre;          /* the pre-tokenizer */
    Metaspace dec;          /* the decoder */
};

int idvec_reserve(IdVec *v, size_t more) {
    if (v->cap - v->len >= more) return KN_OK;
    if (more > SIZE_MAX / sizeof *v->data / 2 - v->len) return kn_error(KN_ENOMEM, "ids: %zu more ids is too many", more);
    size_t cap = v->cap ? v->cap : 256;
    while (cap - v->len < more) cap *= 2;
    int32_t *data = realloc(v->data, cap * sizeof *data);
    if (!data) return kn_error(KN_ENOMEM, "ids: out of memory growing to %zu ids", cap);
    v->data = data;
    v->cap = cap;
    return KN_OK;
}

void idvec_free(IdVec *v) {
    free(v->data);
    *v = (IdVec){0};
}

/* ---- the added-token trie ---- */

static int trie_insert(Tokenizer *tk, const char *s, int32_t id) {
    const uint8_t *u = (const uint8_t *)s;
    int32_t node = 0;
    for (size_t i = 0; u[i]; i++) {
        int32_t child = i == 0 ? tk->root_child[u[0]] : tk->trie[node].first_child;
        while (child && tk->trie[child].byte != u[i]) child = tk->trie[child].next_sibling;
        if (!child) {
            if (tk->trie_len == tk->trie_cap) {
                size_t cap = tk->trie_cap ? 2 * tk->trie_cap : 256;
                TrieNode *trie = realloc(tk->trie, cap * sizeof *trie);
                if (!trie) return kn_error(KN_ENOMEM, "added tokens: out of memory");
                tk->trie = trie;
                tk->trie_cap = cap;
            }
            child = (int32_t)tk->trie_len++;
            if (i == 0) {
                tk->trie[child] = (TrieNode){-1, 0, 0, u[i]};
                tk->root_child[u[0]] = child;
            } else {
                tk->trie[child] = (TrieNode){-1, 0, tk->trie[node].first_child, u[i]};
                tk->trie[node].first_child = child;
            }
        }
        node = child;
    }
    tk->trie[node].token_id = id;
    return KN_OK;
}

/* The longest added token that s[0..len) starts with (len >= 1): its length in bytes and *id, or 0 and
 * *id = -1. */
static size_t match_added(const Tokenizer *tk, const char *s, size_t len, int32_t *id) {
    const uint8_t *u = (const uint8_t *)s;
    int32_t node = tk->root_child[u[0]];
    size_t best = 0;
    *id = -1;
    for (size_t depth = 1; node; depth++) {
        if (tk->trie[node].token_id >= 0) {
            best = depth;
            *id = tk->trie[node].token_id;
        }
        if (depth == len) break;
        node = tk->trie[node].first_child;
        while (node && tk->trie[node].byte != u[depth]) node = tk->trie[node].next_sibling;
    }
    return best;
}

/* ---- reading tokenizer.json ---- */

static int is_unset(const cJSON *v) { return !v || cJSON_IsNull(v); }

static const cJSON *field(const cJSON *obj, const char *key) { return cJSON_GetObjectItemCaseSensitive(obj, key); }

static const char *type_of(const cJSON *obj) {
    const cJSON *type = field(obj, "type");
    return cJSON_IsString(type) ? type->valuestring : "(none)";
}

/* A boolean field that, if present, must be false: we do not implement its true form. */
static int require_false(const cJSON *obj, const char *key, const char *what, const char *path) {
    const cJSON *v = field(obj, key);
    if (is_unset(v) || cJSON_IsFalse(v)) return KN_OK;
    return kn_error(KN_EFORMAT, "%s: %s with %s = true is not supported", path, what, key);
}

/* normalizer: NFKC, or a Sequence of NFKC and BertNormalizers with every option off (a no-op). */
static int load_normalizer(Tokenizer *tk, const cJSON *n, const char *path) {
    if (is_unset(n)) return KN_OK;
    const char *type = type_of(n);
    if (strcmp(type, "NFKC") == 0) {
        tk->nfkc = 1;
        return KN_OK;
    }
    if (strcmp(type, "BertNormalizer") == 0) {
        static const char *const options[] = {"clean_text", "handle_chinese_chars", "lowercase"};
        for (size_t i = 0; i < 3; i++) {
            if (!cJSON_IsFalse(field(n, options[i])))
                return kn_error(KN_EFORMAT, "%s: normalizer BertNormalizer with %s not false is not supported", path,
                                options[i]);
        }
        /* strip_accents null means "as lowercase", which is false here. */
        if (!is_unset(field(n, "strip_accents")) && !cJSON_IsFalse(field(n, "strip_accents")))
            return kn_error(KN_EFORMAT, "%s: normalizer BertNormalizer with strip_accents is not supported", path);
        return KN_OK;
    }
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = field(n, "normalizers"), *item;
        if (!cJSON_IsArray(list)) return kn_error(KN_EFORMAT, "%s: normalizer Sequence has no \"normalizers\" array", path);
        /* NFKC is idempotent and the others are no-ops, so the order and repetitions do not matter. */
        cJSON_ArrayForEach(item, list) {
            int rc = load_normalizer(tk, item, path);
            if (rc) return rc;
        }
        return KN_OK;
    }
    return kn_error(KN_EFORMAT, "%s: normalizer type %s is not supported (only NFKC)", path, type);
}

/* A Metaspace pre-tokenizer or decoder, alone or as the only member of a Sequence. Old files say
 * add_prefix_space (true: prepend always, false: never), new ones prepend_scheme; split defaults to true. */
static int load_metaspace(Metaspace *m, const cJSON *obj, const char *what, const char *list_key, const char *path) {
    if (is_unset(obj)) return kn_error(KN_EFORMAT, "%s: %s is null; only Metaspace is supported", path, what);
    if (strcmp(type_of(obj), "Sequence") == 0) {
        const cJSON *list = field(obj, list_key);
        if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != 1)
            return kn_error(KN_EFORMAT, "%s: %s Sequence must hold exactly one Metaspace", path, what);
        obj = cJSON_GetArrayItem(list, 0);
    }
    if (strcmp(type_of(obj), "Metaspace") != 0)
        return kn_error(KN_EFORMAT, "%s: %s type %s is not supported (only Metaspace)", path, what, type_of(obj));
    const cJSON *rep = field(obj, "replacement");
    uint32_t cp;
    size_t rep_len = cJSON_IsString(rep) ? strlen(rep->valuestring) : 0;
    if (rep_len == 0 || rep_len > 4 || utf8_decode((const uint8_t *)rep->valuestring, rep_len, &cp) != rep_len)
        return kn_error(KN_EFORMAT, "%s: %s Metaspace replacement is not one character", path, what);
    memcpy(m->replacement, rep->valuestring, rep_len + 1);
    m->replacement_len = rep_len;

    m->prepend = PREPEND_ALWAYS;
    const cJSON *scheme = field(obj, "prepend_scheme");
    if (!is_unset(scheme)) {
        const char *s = cJSON_IsString(scheme) ? scheme->valuestring : "";
        if (strcmp(s, "always") == 0) m->prepend = PREPEND_ALWAYS;
        else if (strcmp(s, "first") == 0) m->prepend = PREPEND_FIRST;
        else if (strcmp(s, "never") == 0) m->prepend = PREPEND_NEVER;
        else return kn_error(KN_EFORMAT, "%s: %s Metaspace prepend_scheme is not always, first or never", path, what);
    }
    const cJSON *prefix = field(obj, "add_prefix_space");
    if (!is_unset(prefix) && !cJSON_IsBool(prefix))
        return kn_error(KN_EFORMAT, "%s: %s Metaspace add_prefix_space is not a boolean", path, what);
    if (cJSON_IsFalse(prefix)) {
        if (!is_unset(scheme) && m->prepend != PREPEND_NEVER)
            return kn_error(KN_EFORMAT, "%s: %s Metaspace add_prefix_space false contradicts its prepend_scheme", path,
                            what);
        m->prepend = PREPEND_NEVER;
    }
    const cJSON *split = field(obj, "split");
    if (!is_unset(split) && !cJSON_IsBool(split))
        return kn_error(KN_EFORMAT, "%s: %s Metaspace split is not a boolean", path, what);
    m->split = !cJSON_IsFalse(split);
    return KN_OK;
}

/* added_tokens: each must be in the vocabulary with the same id, or else take the next id after it (as
 * tokenizers assigns them); only the plain kind (matched on raw text, no stripping) is supported. */
static int load_added_tokens(Tokenizer *tk, const cJSON *list, const char *path) {
    int32_t n_vocab = bpe_vocab_size(tk->bpe);
    int n = is_unset(list) ? 0 : cJSON_GetArraySize(list);
    if (!is_unset(list) && !cJSON_IsArray(list)) return kn_error(KN_EFORMAT, "%s: added_tokens is not an array", path);
    tk->special = calloc((size_t)n_vocab + (size_t)n, 1);
    tk->extra_tokens = calloc((size_t)n + 1, sizeof *tk->extra_tokens);
    tk->trie = malloc(256 * sizeof *tk->trie);
    if (!tk->special || !tk->extra_tokens || !tk->trie) return kn_error(KN_ENOMEM, "%s: out of memory", path);
    tk->trie_cap = 256;
    tk->trie_len = 1;
    tk->trie[0] = (TrieNode){-1, 0, 0, 0};
    tk->n_ids = n_vocab;

    int index = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, list) {
        char what[64], quoted[96];
        snprintf(what, sizeof what, "added_tokens[%d]", index++);
        const cJSON *content = field(item, "content"), *id_item = field(item, "id");
        if (!cJSON_IsString(content) || content->valuestring[0] == '\0')
            return kn_error(KN_EFORMAT, "%s: %s has no content", path, what);
        const char *s = content->valuestring;
        size_t len = strlen(s);
        utf8_quote(quoted, sizeof quoted, s);
        if (utf8_find_invalid(s, len) != len)
            return kn_error(KN_EFORMAT, "%s: %s %s is not valid UTF-8", path, what, quoted);
        if (!cJSON_IsNumber(id_item) || id_item->valuedouble < 0 || id_item->valuedouble > INT32_MAX - 1 ||
            id_item->valuedouble != (int32_t)id_item->valuedouble)
            return kn_error(KN_EFORMAT, "%s: %s %s has no valid id", path, what, quoted);
        int rc = KN_OK;
        static const char *const unsupported[] = {"single_word", "lstrip", "rstrip", "normalized"};
        for (size_t i = 0; i < 4 && rc == KN_OK; i++) rc = require_false(item, unsupported[i], what, path);
        const cJSON *special = field(item, "special");
        if (rc == KN_OK && !is_unset(special) && !cJSON_IsBool(special))
            rc = kn_error(KN_EFORMAT, "%s: %s special is not a boolean", path, what);
        if (rc) return rc;

        int32_t id = (int32_t)id_item->valuedouble, in_vocab = bpe_token_to_id(tk->bpe, s, len);
        int32_t seen;
        if (match_added(tk, s, len, &seen) == len)
            return kn_error(KN_EFORMAT, "%s: %s %s is listed twice", path, what, quoted);
        if (in_vocab >= 0 && in_vocab != id)
            return kn_error(KN_EFORMAT, "%s: %s %s has id %d but the vocab gives it id %d", path, what, quoted, id,
                            in_vocab);
        if (in_vocab < 0) {
            if (id != tk->n_ids)
                return kn_error(KN_EFORMAT, "%s: %s %s is not in the vocab and has id %d, not the next free id %d", path,
                                what, quoted, id, tk->n_ids);
            tk->extra_tokens[tk->n_ids - n_vocab] = strdup(s);
            if (!tk->extra_tokens[tk->n_ids - n_vocab]) return kn_error(KN_ENOMEM, "%s: out of memory", path);
            tk->n_ids++;
        }
        tk->special[id] = cJSON_IsTrue(special);
        rc = trie_insert(tk, s, id);
        if (rc) return kn_error_wrap(rc, "%s", path);
    }
    return KN_OK;
}

static int load_from_json(Tokenizer *tk, const cJSON *root, const char *path) {
    if (!cJSON_IsObject(root)) return kn_error(KN_EFORMAT, "%s: not a JSON object", path);
    if (!field(root, "model")) return kn_error(KN_EFORMAT, "%s: no \"model\"", path);
    /* encode() is add_special_tokens=false, so the post-processor never applies; truncation and
     * padding would change the ids, and we leave them to the caller. */
    if (!is_unset(field(root, "truncation")))
        return kn_error(KN_EFORMAT, "%s: truncation is set, which is not supported", path);
    if (!is_unset(field(root, "padding"))) return kn_error(KN_EFORMAT, "%s: padding is set, which is not supported", path);
    int rc = bpe_from_json(&tk->bpe, field(root, "model"), path);
    if (rc == KN_OK) rc = load_normalizer(tk, field(root, "normalizer"), path);
    if (rc == KN_OK) rc = load_metaspace(&tk->pre, field(root, "pre_tokenizer"), "pre_tokenizer", "pretokenizers", path);
    if (rc == KN_OK) rc = load_metaspace(&tk->dec, field(root, "decoder"), "decoder", "decoders", path);
    if (rc == KN_OK) rc = load_added_tokens(tk, field(root, "added_tokens"), path);
    return rc;
}

/* cJSON ends a string at an escaped NUL ("\u0000"), which would silently cut a token short: refuse
 * such a file. Returns the offset of the first escaped NUL, or len if there is none. */
static size_t find_escaped_nul(const char *json, size_t len) {
    for (const char *p = json; (p = memmem(p, len - (size_t)(p - json), "u0000", 5)) != NULL; p += 5) {
        size_t backslashes = 0;
        while (p - backslashes > json && p[-1 - (ptrdiff_t)backslashes] == '\\') backslashes++;
        if (backslashes % 2 == 1) return (size_t)(p - 1 - json);
    }
    return len;
}

int tokenizer_load(Tokenizer **out, const char *path) {
    *out = NULL;
    char *json;
    size_t len;
    int rc = file_read_all(path, &json, &len);
    if (rc) return rc;
    size_t nul = find_escaped_nul(json, len);
    if (nul < len) {
        free(json);
        return kn_error(KN_EFORMAT, "%s: a string holds \\u0000 (byte offset %zu), which is not supported", path, nul);
    }
    /* The length counts the NUL that file_read_all() puts after the data, so that cJSON refuses anything
     * after the JSON value; a NUL byte inside the file ends the parse early and is refused below. */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len + 1, &end, 1);
    if (root && end != json + len) {
        cJSON_Delete(root);
        root = NULL;
    }
    if (!root) {
        size_t at = end && end >= json && end <= json + len ? (size_t)(end - json) : 0, line = 1;
        for (size_t i = 0; i < at; i++) line += json[i] == '\n';
        free(json);
        return kn_error(KN_EFORMAT, "%s: not valid JSON (line %zu, byte offset %zu)", path, line, at);
    }
    free(json);
    Tokenizer *tk = calloc(1, sizeof *tk);
    if (!tk) rc = kn_error(KN_ENOMEM, "%s: out of memory", path);
    else rc = load_from_json(tk, root, path);
    cJSON_Delete(root);
    if (rc) {
        tokenizer_free(tk);
        return rc;
    }
    *out = tk;
    return KN_OK;
}

void tokenizer_free(Tokenizer *tk) {
    if (!tk) return;
    if (tk->extra_tokens && tk->bpe)
        for (int32_t i = 0; i < tk->n_ids - bpe_vocab_size(tk->bpe); i++) free(tk->extra_tokens[i]);
    free(tk->extra_tokens);
    free(tk->special);
    free(tk->trie);
    bpe_free(tk->bpe);
    free(tk);
}

/* ---- encoding ---- */

typedef struct {
    ByteBuf repaired;   /* the text with U+FFFD for invalid UTF-8, when asked for */
    ByteBuf normalized; /* one piece between added tokens, after NFKC */
    ByteBuf word;       /* one word of the Metaspace pre-tokenizer */
    BpeScratch bpe;
} EncodeScratch;

static void encode_scratch_free(EncodeScratch *sc) {
    free(sc->repaired.data);
    free(sc->normalized.data);
    free(sc->word.data);
    bpe_scratch_free(&sc->bpe);
}

static int flush_word(const Tokenizer *tk, EncodeScratch *sc, IdVec *ids) {
    if (sc->word.len == 0) return KN_OK;
    int rc = bpe_encode_word(tk->bpe, sc->word.data, sc->word.len, ids, &sc->bpe);
    sc->word.len = 0;
    return rc;
}

/* One piece of text between added tokens (non-empty): NFKC, then Metaspace, then BPE per word.
 * at_start: the piece begins the text (for prepend_scheme "first"). */
static int encode_piece(const Tokenizer *tk, const char *piece, size_t len, int at_start, EncodeScratch *sc,
                        IdVec *ids) {
    const char *s = piece;
    size_t n = len;
    int rc;
    if (tk->nfkc) {
        sc->normalized.len = 0;
        rc = nfkc_append(&sc->normalized, piece, len);
        if (rc) return rc;
        s = sc->normalized.data;
        n = sc->normalized.len;
    }
    if (n == 0) return KN_OK;
    const Metaspace *m = &tk->pre;
    const char *rep = m->replacement;
    size_t rep_len = m->replacement_len;
    /* Every byte may become a replacement: one reservation covers the whole piece. */
    sc->word.len = 0;
    rc = bytebuf_reserve(&sc->word, (n + 1) * rep_len + n);
    if (rc) return rc;
    int starts_with_rep = s[0] == ' ' || (n >= rep_len && memcmp(s, rep, rep_len) == 0);
    if (!starts_with_rep && (m->prepend == PREPEND_ALWAYS || (m->prepend == PREPEND_FIRST && at_start))) {
        memcpy(sc->word.data, rep, rep_len);
        sc->word.len = rep_len;
    }
    for (size_t i = 0; i < n;) {
        size_t sep = s[i] == ' '                                                                   ? 1
                     : s[i] == rep[0] && n - i >= rep_len && memcmp(s + i, rep, rep_len) == 0 ? rep_len
                                                                                               : 0;
        if (sep) {
            /* split: every replacement begins a new word */
            if (m->split && (rc = flush_word(tk, sc, ids))) return rc;
            memcpy(sc->word.data + sc->word.len, rep, rep_len);
            sc->word.len += rep_len;
            i += sep;
        } else {
            sc->word.data[sc->word.len++] = s[i++];
        }
    }
    return flush_word(tk, sc, ids);
}

int tokenizer_encode(const Tokenizer *tk, const char *text, size_t len, unsigned flags, IdVec *ids) {
    if (flags & ~(unsigned)TOKENIZER_REPLACE_INVALID_UTF8) return kn_error(KN_EINVAL, "flags: unknown bits 0x%x", flags);
    if (!text && len) return kn_error(KN_EINVAL, "text: NULL with length %zu", len);
    if (len == 0) return KN_OK;
    EncodeScratch sc = {0};
    int rc = KN_OK;
    size_t bad = utf8_find_invalid(text, len);
    if (bad < len) {
        if (!(flags & TOKENIZER_REPLACE_INVALID_UTF8))
            return kn_error(KN_EFORMAT, "text: invalid UTF-8 at byte offset %zu (byte 0x%02X)", bad,
                            (unsigned)(uint8_t)text[bad]);
        rc = utf8_append_repaired(&sc.repaired, text, len);
        text = sc.repaired.data;
        len = sc.repaired.len;
    }
    size_t start_len = ids->len, piece = 0;
    for (size_t pos = 0; pos < len && rc == KN_OK;) {
        int32_t id;
        size_t matched = match_added(tk, text + pos, len - pos, &id);
        if (!matched) {
            pos++;
            continue;
        }
        if (pos > piece) rc = encode_piece(tk, text + piece, pos - piece, piece == 0, &sc, ids);
        if (rc == KN_OK) rc = idvec_reserve(ids, 1);
        if (rc == KN_OK) ids->data[ids->len++] = id;
        pos += matched;
        piece = pos;
    }
    if (rc == KN_OK && len > piece) rc = encode_piece(tk, text + piece, len - piece, piece == 0, &sc, ids);
    encode_scratch_free(&sc);
    if (rc) ids->len = start_len;
    return rc;
}

/* ---- decoding and the vocabulary ---- */

int tokenizer_decode(const Tokenizer *tk, const int32_t *ids, size_t n, int skip_special, char **out_text) {
    *out_text = NULL;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tk->n_ids)
            return kn_error(KN_EINVAL, "ids[%zu]: token id %d is out of range [0, %d)", i, ids[i], tk->n_ids);
    const char *rep = tk->dec.replacement;
    size_t rep_len = tk->dec.replacement_len;
    ByteBuf b = {0};
    int rc = KN_OK, first = 1;
    for (size_t i = 0; i < n && rc == KN_OK; i++) {
        if (skip_special && tk->special[ids[i]]) continue;
        const char *t = tokenizer_token(tk, ids[i]);
        /* The first token drops its replacements (the space the encoder prepended); the others turn
         * each into a space. */
        int drop = first && tk->dec.prepend != PREPEND_NEVER;
        first = 0;
        while (*t && rc == KN_OK) {
            const char *r = strstr(t, rep);
            size_t plain = r ? (size_t)(r - t) : strlen(t);
            rc = bytebuf_append(&b, t, plain);
            if (r && rc == KN_OK && !drop) rc = bytebuf_append(&b, " ", 1);
            t += plain + (r ? rep_len : 0);
        }
    }
    if (rc == KN_OK) rc = bytebuf_append(&b, "", 1);
    if (rc) {
        free(b.data);
        return rc;
    }
    *out_text = b.data;
    return KN_OK;
}

const char *tokenizer_token(const Tokenizer *tk, int32_t id) {
    int32_t n_vocab = bpe_vocab_size(tk->bpe);
    if (id < 0 || id >= tk->n_ids) return NULL;
    return id < n_vocab ? bpe_token(tk->bpe, id, NULL) : tk->extra_tokens[id - n_vocab];
}

int32_t tokenizer_token_to_id(const Tokenizer *tk, const char *token) {
    size_t len = strlen(token);
    int32_t id;
    if (len && match_added(tk, token, len, &id) == len) return id;
    return bpe_token_to_id(tk->bpe, token, len);
}

int tokenizer_vocab_size(const Tokenizer *tk) { return tk->n_ids; }

int tokenizer_is_special(const Tokenizer *tk, int32_t id) { return id >= 0 && id < tk->n_ids && tk->special[id]; }
