/* pickle.h — a small, safe unpickler: Python pickle bytes (protocols 2 to 5) to a tree of values.
 *
 * Enough of the pickle virtual machine for what torch.save writes (a state dict of tensors), and nothing
 * is ever executed: GLOBAL / STACK_GLOBAL push a PV_GLOBAL naming module and attribute, and calling one
 * (REDUCE, NEWOBJ) records a PV_CALL (callable + argument tuple) for the caller to interpret against its
 * own whitelist. The one exception is collections.OrderedDict(), which must become a real PV_DICT because
 * later opcodes (SETITEMS) fill it. Persistent ids (BINPERSID) become PV_PERSID around the id value.
 *
 * Hostile input is expected: every read is bounds-checked, opcodes outside the supported set (the text
 * opcodes of protocols 0/1, extension codes, sets, out-of-band buffers, ...) are refused by name and
 * offset, and all memory comes from one arena whose size is capped by a multiple of the bytes read so far
 * (not of the buffer, which for a legacy torch file is the whole checkpoint behind the pickle), so a
 * pickle cannot make us loop, recurse or allocate without bound. Memo references can make the value
 * graph shared or even cyclic (a list appended to itself): consumers must walk it with a fixed depth,
 * never by generic recursion. */
#ifndef KN_PICKLE_H
#define KN_PICKLE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PV_NONE,
    PV_BOOL,      /* i: 0 or 1 */
    PV_INT,       /* i: an integer that fits 64 bits */
    PV_BIGINT,    /* str: a wider integer (LONG1/LONG4), its little-endian two's complement bytes as stored;
                     torch's legacy magic number 0x1950a86a20f9469cfc6c is one */
    PV_FLOAT,     /* f */
    PV_STR,       /* str: UTF-8 (BINUNICODE*) or raw bytes (BINSTRING*, BINBYTES*), NUL-terminated copy */
    PV_TUPLE,     /* seq */
    PV_LIST,      /* seq */
    PV_DICT,      /* seq: keys and values alternate, in insertion order (duplicates kept) */
    PV_GLOBAL,    /* global: "module", "name" */
    PV_CALL,      /* call: callable (a PV_GLOBAL), args (a PV_TUPLE), state (from BUILD, or NULL) */
    PV_PERSID,    /* persid: the persistent id value */
} PickleKind;

typedef struct PickleValue PickleValue;
struct PickleValue {
    PickleKind kind;
    union {
        int64_t i;
        double f;
        struct {
            const char *s;
            size_t len;
        } str;
        struct {
            PickleValue **items;
            size_t count, cap;
        } seq;
        struct {
            const char *module, *name;
        } global;
        struct {
            PickleValue *callable, *args, *state;
        } call;
        PickleValue *persid;
    };
};

typedef struct Pickle Pickle;

/* Runs data[0..len) up to STOP. *root is the value STOP returns; it and everything it reaches live until
 * pickle_free(*out). where names the stream in messages (e.g. "model.bin: archive/data.pkl"). */
int pickle_load(Pickle **out, const PickleValue **root, const uint8_t *data, size_t len, const char *where);
/* The same for a pickle followed by other bytes (torch's legacy format is several pickles and raw data in
 * a row): *used gets the length of the pickle, up to and including its STOP. */
int pickle_load_prefix(Pickle **out, const PickleValue **root, size_t *used, const uint8_t *data, size_t len,
                       const char *where);
void pickle_free(Pickle *p);

/* Every PV_PERSID the stream made, in stream order, whether or not the root reaches it; *ids lives until
 * pickle_free(p). (A legacy torch file needs every storage's type before it can find any storage's bytes.) */
size_t pickle_persids(const Pickle *p, PickleValue *const **ids);

/* 1 when v is a PV_GLOBAL module.name. */
int pickle_is_global(const PickleValue *v, const char *module, const char *name);
/* A short name of a kind ("int", "tuple", ...) for messages. */
const char *pickle_kind_name(PickleKind kind);

#endif
