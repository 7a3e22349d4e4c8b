/* pickle.c — see pickle.h. Opcode semantics follow CPython's Lib/pickle.py (_Unpickler) and pickletools;
 * the stack, mark stack and memo behave as there, so a stream CPython rejects for underflow we reject too. */
#include "model/pickle.h"

#include "util/error.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the arena: every value and array of one load, freed at once ---- */

typedef struct Chunk {
    struct Chunk *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
} Chunk;

struct Pickle {
    Chunk *chunks;
    size_t allocated, limit;
    PickleValue **persids;        /* every BINPERSID result, for pickle_persids() */
    size_t npersids, persids_cap;
};

#define CHUNK_SIZE 65536
/* Legitimate state dicts need ~10 bytes of arena per pickle byte; hostile ones are cut off here. The bytes
 * counted are those read so far (justify()), since the buffer may run far past the pickle's STOP. */
#define ARENA_PER_BYTE 64
#define ARENA_BASE (1u << 20)
/* A GLOBAL's "module\nname\n" lines are short in any real pickle. */
#define MAX_GLOBAL_LINE 1024

static void *arena_alloc(Pickle *p, size_t n) {
    n = (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    Chunk *c = p->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK_SIZE ? n : CHUNK_SIZE;
        if (p->allocated + cap > p->limit) return NULL;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = p->chunks;
        c->used = 0;
        c->cap = cap;
        p->chunks = c;
        p->allocated += cap;
    }
    void *ptr = c->data + c->used;
    c->used += n;
    return ptr;
}

void pickle_free(Pickle *p) {
    if (!p) return;
    for (Chunk *c = p->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(p->persids);
    free(p);
}

/* ---- the machine ---- */

typedef struct {
    Pickle *arena;
    const uint8_t *data;
    size_t len, pos;
    const char *where;
    size_t op_at;                 /* offset of the opcode being run, for messages */
    PickleValue **stack;
    size_t sp, stack_cap;
    size_t *marks;                /* stack heights at each MARK */
    size_t nmarks, marks_cap;
    PickleValue **memo;
    size_t memo_cap, memo_count;
    PickleValue *none, *true_, *false_;
} Vm;

static int vm_error(Vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int vm_error(Vm *vm, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    unsigned op = vm->op_at < vm->len ? vm->data[vm->op_at] : 0;
    return kn_error(KN_EFORMAT, "%s: pickle opcode 0x%02x at byte %zu: %s", vm->where, op, vm->op_at, what);
}

static int vm_nomem(Vm *vm) {
    return kn_error(KN_ENOMEM, "%s: pickle needs more memory than its size justifies (at byte %zu)", vm->where,
                    vm->op_at);
}

static PickleValue *new_value(Vm *vm, PickleKind kind) {
    PickleValue *v = arena_alloc(vm->arena, sizeof *v);
    if (v) {
        memset(v, 0, sizeof *v);
        v->kind = kind;
    }
    return v;
}

/* Raises the arena's cap to what the first end bytes of the stream justify. */
static void justify(Vm *vm, size_t end) {
    size_t limit = end > (SIZE_MAX - ARENA_BASE) / ARENA_PER_BYTE ? SIZE_MAX : end * ARENA_PER_BYTE + ARENA_BASE;
    if (limit > vm->arena->limit) vm->arena->limit = limit;
}

static int need(Vm *vm, uint64_t n) {
    if (n > vm->len - vm->pos) return vm_error(vm, "truncated: needs %llu more bytes", (unsigned long long)n);
    justify(vm, vm->pos + (size_t)n);
    return KN_OK;
}

static uint64_t read_le(Vm *vm, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | vm->data[vm->pos + (size_t)i];
    vm->pos += (size_t)n;
    return v;
}

static int push(Vm *vm, PickleValue *v) {
    if (!v) return vm_nomem(vm);
    if (vm->sp == vm->stack_cap) {
        size_t cap = vm->stack_cap ? vm->stack_cap * 2 : 256;
        PickleValue **s = realloc(vm->stack, cap * sizeof *s);
        if (!s) return vm_nomem(vm);
        vm->stack = s;
        vm->stack_cap = cap;
    }
    vm->stack[vm->sp++] = v;
    return KN_OK;
}

static size_t frame_base(const Vm *vm) { return vm->nmarks ? vm->marks[vm->nmarks - 1] : 0; }

static int pop(Vm *vm, PickleValue **out) {
    if (vm->sp == frame_base(vm)) return vm_error(vm, "stack underflow");
    *out = vm->stack[--vm->sp];
    return KN_OK;
}

static int top(Vm *vm, PickleValue **out) {
    if (vm->sp == frame_base(vm)) return vm_error(vm, "stack underflow");
    *out = vm->stack[vm->sp - 1];
    return KN_OK;
}

/* Pops the items above the last MARK and the mark: they are stack[*base .. *base + *n). */
static int pop_mark(Vm *vm, size_t *base, size_t *n) {
    if (vm->nmarks == 0) return vm_error(vm, "no MARK to pop");
    *base = vm->marks[--vm->nmarks];
    *n = vm->sp - *base;
    vm->sp = *base;
    return KN_OK;
}

static PickleValue *new_seq(Vm *vm, PickleKind kind, PickleValue *const *items, size_t n) {
    PickleValue *v = new_value(vm, kind);
    if (!v) return NULL;
    if (n) {
        v->seq.items = arena_alloc(vm->arena, n * sizeof *items);
        if (!v->seq.items) return NULL;
        memcpy(v->seq.items, items, n * sizeof *items);
    }
    v->seq.count = v->seq.cap = n;
    return v;
}

static int seq_append(Vm *vm, PickleValue *seq, PickleValue *const *items, size_t n) {
    if (n == 0) return KN_OK; /* APPENDS of an empty mark; items and seq->seq.items may be NULL */
    if (seq->seq.cap - seq->seq.count < n) {
        size_t cap = seq->seq.cap ? seq->seq.cap : 8;
        while (cap - seq->seq.count < n) cap *= 2;
        PickleValue **grown = arena_alloc(vm->arena, cap * sizeof *grown);
        if (!grown) return vm_nomem(vm);
        if (seq->seq.count) memcpy(grown, seq->seq.items, seq->seq.count * sizeof *grown);
        seq->seq.items = grown;
        seq->seq.cap = cap;
    }
    memcpy(seq->seq.items + seq->seq.count, items, n * sizeof *items);
    seq->seq.count += n;
    return KN_OK;
}

static PickleValue *new_str(Vm *vm, const uint8_t *s, size_t n) {
    PickleValue *v = new_value(vm, PV_STR);
    char *copy = v ? arena_alloc(vm->arena, n + 1) : NULL;
    if (!copy) return NULL;
    memcpy(copy, s, n);
    copy[n] = '\0';
    v->str.s = copy;
    v->str.len = n;
    return v;
}

static PickleValue *new_int(Vm *vm, int64_t i) {
    PickleValue *v = new_value(vm, PV_INT);
    if (v) v->i = i;
    return v;
}

/* ---- opcodes that need more than a line ---- */

/* A string or bytes opcode: a little-endian length of width bytes, then the bytes. */
static int op_string(Vm *vm, int width, int is_signed) {
    int rc = need(vm, (uint64_t)width);
    if (rc != KN_OK) return rc;
    uint64_t n = read_le(vm, width);
    if (is_signed && (n & 0x80000000u)) return vm_error(vm, "negative string length");
    if ((rc = need(vm, n)) != KN_OK) return rc;
    PickleValue *v = new_str(vm, vm->data + vm->pos, (size_t)n);
    vm->pos += (size_t)n;
    return push(vm, v);
}

/* LONG1 / LONG4: a little-endian two's complement integer of n bytes; wider than 64 bits stays bytes. */
static int op_long(Vm *vm, int width) {
    int rc = need(vm, (uint64_t)width);
    if (rc != KN_OK) return rc;
    uint64_t n = read_le(vm, width);
    if (width == 4 && (n & 0x80000000u)) return vm_error(vm, "negative integer length");
    if ((rc = need(vm, n)) != KN_OK) return rc;
    if (n > 8) {
        PickleValue *v = new_str(vm, vm->data + vm->pos, (size_t)n);
        if (v) v->kind = PV_BIGINT;
        vm->pos += (size_t)n;
        return push(vm, v);
    }
    uint64_t u = n ? read_le(vm, (int)n) : 0;
    if (n && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~0ull << (8 * n);   /* sign-extend */
    return push(vm, new_int(vm, (int64_t)u));
}

/* GLOBAL's argument: one line ending in '\n', returned without it. */
static int read_line(Vm *vm, const uint8_t **s, size_t *n) {
    size_t limit = vm->len - vm->pos < MAX_GLOBAL_LINE ? vm->len - vm->pos : MAX_GLOBAL_LINE;
    const uint8_t *nl = memchr(vm->data + vm->pos, '\n', limit);
    if (!nl && limit < MAX_GLOBAL_LINE) return vm_error(vm, "truncated: GLOBAL name has no end of line");
    if (!nl) return vm_error(vm, "GLOBAL name is not a line of at most %d bytes", MAX_GLOBAL_LINE);
    *s = vm->data + vm->pos;
    *n = (size_t)(nl - *s);
    vm->pos += *n + 1;
    return KN_OK;
}

static int push_global(Vm *vm, const uint8_t *module, size_t module_len, const uint8_t *name, size_t name_len) {
    if (memchr(module, '\0', module_len) || memchr(name, '\0', name_len)) return vm_error(vm, "global name holds a NUL byte");
    PickleValue *v = new_value(vm, PV_GLOBAL);
    PickleValue *m = v ? new_str(vm, module, module_len) : NULL;
    PickleValue *a = m ? new_str(vm, name, name_len) : NULL;
    if (!a) return vm_nomem(vm);
    v->global.module = m->str.s;
    v->global.name = a->str.s;
    return push(vm, v);
}

static int op_global(Vm *vm) {
    const uint8_t *module = NULL, *name = NULL;
    size_t module_len = 0, name_len = 0;
    int rc = read_line(vm, &module, &module_len);
    if (rc == KN_OK) rc = read_line(vm, &name, &name_len);
    if (rc == KN_OK) rc = push_global(vm, module, module_len, name, name_len);
    return rc;
}

static int op_stack_global(Vm *vm) {
    PickleValue *module = NULL, *name = NULL;
    int rc = pop(vm, &name);
    if (rc == KN_OK) rc = pop(vm, &module);
    if (rc != KN_OK) return rc;
    if (module->kind != PV_STR || name->kind != PV_STR) return vm_error(vm, "STACK_GLOBAL of non-strings");
    return push_global(vm, (const uint8_t *)module->str.s, module->str.len, (const uint8_t *)name->str.s,
                       name->str.len);
}

/* REDUCE and NEWOBJ: nothing is called; the call is recorded, except OrderedDict(), a dict to be filled. */
static int op_call(Vm *vm) {
    PickleValue *args = NULL, *callable = NULL;
    int rc = pop(vm, &args);
    if (rc == KN_OK) rc = pop(vm, &callable);
    if (rc != KN_OK) return rc;
    if (callable->kind != PV_GLOBAL) return vm_error(vm, "call of a %s, not of a global", pickle_kind_name(callable->kind));
    if (args->kind != PV_TUPLE) return vm_error(vm, "call arguments are a %s, not a tuple", pickle_kind_name(args->kind));
    if (pickle_is_global(callable, "collections", "OrderedDict") && args->seq.count == 0)
        return push(vm, new_seq(vm, PV_DICT, NULL, 0));
    PickleValue *v = new_value(vm, PV_CALL);
    if (v) {
        v->call.callable = callable;
        v->call.args = args;
    }
    return push(vm, v);
}

static int op_build(Vm *vm) {
    PickleValue *state = NULL, *target = NULL;
    int rc = pop(vm, &state);
    if (rc == KN_OK) rc = top(vm, &target);
    if (rc != KN_OK) return rc;
    if (target->kind == PV_CALL) target->call.state = state;
    else if (target->kind != PV_DICT) return vm_error(vm, "BUILD on a %s", pickle_kind_name(target->kind));
    /* On a dict (an OrderedDict with attributes, e.g. torch's _metadata) the state sets attributes: unused. */
    return KN_OK;
}

static int memo_put(Vm *vm, uint64_t index) {
    PickleValue *v = NULL;
    int rc = top(vm, &v);
    if (rc != KN_OK) return rc;
    /* A pickler numbers memo entries 0, 1, 2, ..., each put taking at least two bytes: an index beyond the
     * bytes read so far is not real. */
    if (index > vm->pos) return vm_error(vm, "memo index %llu is implausibly large", (unsigned long long)index);
    if (index >= vm->memo_cap) {
        size_t cap = vm->memo_cap ? vm->memo_cap : 256;
        while (cap <= index) cap *= 2;
        PickleValue **m = realloc(vm->memo, cap * sizeof *m);
        if (!m) return vm_nomem(vm);
        memset(m + vm->memo_cap, 0, (cap - vm->memo_cap) * sizeof *m);
        vm->memo = m;
        vm->memo_cap = cap;
    }
    if (!vm->memo[index]) vm->memo_count++;
    vm->memo[index] = v;
    return KN_OK;
}

static int memo_get(Vm *vm, uint64_t index) {
    if (index >= vm->memo_cap || !vm->memo[index])
        return vm_error(vm, "memo entry %llu was never stored", (unsigned long long)index);
    return push(vm, vm->memo[index]);
}

/* TUPLE, LIST, DICT (from the mark) and APPENDS, SETITEMS (onto the container below the mark). */
static int op_from_mark(Vm *vm, int op) {
    size_t base = 0, n = 0;
    int rc = pop_mark(vm, &base, &n);
    if (rc != KN_OK) return rc;
    PickleValue **items = n ? vm->stack + base : NULL; /* the stack may be unallocated when n == 0 */
    if ((op == 'd' || op == 'u') && n % 2) return vm_error(vm, "odd number of items for a dict");
    if (op == 't') return push(vm, new_seq(vm, PV_TUPLE, items, n));
    if (op == 'l') return push(vm, new_seq(vm, PV_LIST, items, n));
    if (op == 'd') return push(vm, new_seq(vm, PV_DICT, items, n));
    PickleValue *target = NULL;
    if ((rc = top(vm, &target)) != KN_OK) return rc;
    PickleKind want = op == 'e' ? PV_LIST : PV_DICT;
    if (target->kind != want)
        return vm_error(vm, "%s onto a %s", op == 'e' ? "APPENDS" : "SETITEMS", pickle_kind_name(target->kind));
    return seq_append(vm, target, items, n);
}

/* APPEND and SETITEM: one item (or pair) onto the container below it. */
static int op_add_one(Vm *vm, int op) {
    PickleValue *pair[2], *target = NULL;
    int n = op == 'a' ? 1 : 2, rc = KN_OK;
    for (int i = n - 1; i >= 0 && rc == KN_OK; i--) rc = pop(vm, &pair[i]);
    if (rc == KN_OK) rc = top(vm, &target);
    if (rc != KN_OK) return rc;
    if (target->kind != (op == 'a' ? PV_LIST : PV_DICT))
        return vm_error(vm, "%s onto a %s", op == 'a' ? "APPEND" : "SETITEM", pickle_kind_name(target->kind));
    return seq_append(vm, target, pair, (size_t)n);
}

static int op_tuple_n(Vm *vm, size_t n) {
    if (vm->sp - frame_base(vm) < n) return vm_error(vm, "stack underflow");
    vm->sp -= n;
    return push(vm, new_seq(vm, PV_TUPLE, vm->stack + vm->sp, n));
}

static int op_int(Vm *vm, int width, int is_signed) {
    int rc = need(vm, (uint64_t)width);
    if (rc != KN_OK) return rc;
    uint64_t u = read_le(vm, width);
    return push(vm, new_int(vm, is_signed ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u));
}

static int op_float(Vm *vm) {
    int rc = need(vm, 8);
    if (rc != KN_OK) return rc;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u = u << 8 | vm->data[vm->pos++];   /* big-endian */
    PickleValue *v = new_value(vm, PV_FLOAT);
    if (v) memcpy(&v->f, &u, sizeof v->f);
    return push(vm, v);
}

/* Runs one opcode; sets *done at STOP. */
static int step(Vm *vm, const PickleValue **root, int *done) {
    vm->op_at = vm->pos;
    justify(vm, vm->pos + 1);
    int op = vm->data[vm->pos++], rc;
    size_t base = 0, n = 0;
    PickleValue *v = NULL;
    switch (op) {
    case 0x80: /* PROTO */
        if ((rc = need(vm, 1)) != KN_OK) return rc;
        if (vm->data[vm->pos] > 5) return vm_error(vm, "unsupported pickle protocol %d", vm->data[vm->pos]);
        vm->pos++;
        return KN_OK;
    case 0x95: /* FRAME: a length prefix for buffering; the stream reads the same without it */
        if ((rc = need(vm, 8)) != KN_OK) return rc;
        if ((rc = need(vm, read_le(vm, 8))) != KN_OK) return rc;
        return KN_OK;
    case '.': /* STOP */
        if ((rc = pop(vm, &v)) != KN_OK) return rc;
        *root = v;
        *done = 1;
        return KN_OK;
    case '(': /* MARK */
        if (vm->nmarks == vm->marks_cap) {
            size_t cap = vm->marks_cap ? vm->marks_cap * 2 : 64;
            size_t *m = realloc(vm->marks, cap * sizeof *m);
            if (!m) return vm_nomem(vm);
            vm->marks = m;
            vm->marks_cap = cap;
        }
        vm->marks[vm->nmarks++] = vm->sp;
        return KN_OK;
    case '0': /* POP: the top item, or the mark itself when nothing is above it (as CPython does) */
        if (vm->sp > frame_base(vm)) vm->sp--;
        else return pop_mark(vm, &base, &n);
        return KN_OK;
    case '1': return pop_mark(vm, &base, &n);   /* POP_MARK */
    case '2': return top(vm, &v) != KN_OK ? KN_EFORMAT : push(vm, v);   /* DUP */
    case 'N': return push(vm, vm->none);
    case 0x88: return push(vm, vm->true_);
    case 0x89: return push(vm, vm->false_);
    case 'J': return op_int(vm, 4, 1);   /* BININT */
    case 'K': return op_int(vm, 1, 0);   /* BININT1 */
    case 'M': return op_int(vm, 2, 0);   /* BININT2 */
    case 0x8a: return op_long(vm, 1);    /* LONG1 */
    case 0x8b: return op_long(vm, 4);    /* LONG4 */
    case 'G': return op_float(vm);       /* BINFLOAT */
    case 'X': return op_string(vm, 4, 0);     /* BINUNICODE */
    case 0x8c: return op_string(vm, 1, 0);    /* SHORT_BINUNICODE */
    case 0x8d: return op_string(vm, 8, 0);    /* BINUNICODE8 */
    case 'T': return op_string(vm, 4, 1);     /* BINSTRING */
    case 'U': return op_string(vm, 1, 0);     /* SHORT_BINSTRING */
    case 'B': return op_string(vm, 4, 0);     /* BINBYTES */
    case 'C': return op_string(vm, 1, 0);     /* SHORT_BINBYTES */
    case 0x8e: return op_string(vm, 8, 0);    /* BINBYTES8 */
    case ')': return push(vm, new_seq(vm, PV_TUPLE, NULL, 0));
    case 0x85: return op_tuple_n(vm, 1);
    case 0x86: return op_tuple_n(vm, 2);
    case 0x87: return op_tuple_n(vm, 3);
    case ']': return push(vm, new_seq(vm, PV_LIST, NULL, 0));
    case '}': return push(vm, new_seq(vm, PV_DICT, NULL, 0));
    case 't': case 'l': case 'd': case 'e': case 'u': return op_from_mark(vm, op);
    case 'a': case 's': return op_add_one(vm, op);
    case 'q': /* BINPUT */
        if ((rc = need(vm, 1)) != KN_OK) return rc;
        return memo_put(vm, read_le(vm, 1));
    case 'r': /* LONG_BINPUT */
        if ((rc = need(vm, 4)) != KN_OK) return rc;
        return memo_put(vm, read_le(vm, 4));
    case 0x94: return memo_put(vm, vm->memo_count);   /* MEMOIZE */
    case 'h': /* BINGET */
        if ((rc = need(vm, 1)) != KN_OK) return rc;
        return memo_get(vm, read_le(vm, 1));
    case 'j': /* LONG_BINGET */
        if ((rc = need(vm, 4)) != KN_OK) return rc;
        return memo_get(vm, read_le(vm, 4));
    case 'c': return op_global(vm);
    case 0x93: return op_stack_global(vm);
    case 'R': case 0x81: return op_call(vm);   /* REDUCE, NEWOBJ */
    case 'b': return op_build(vm);
    case 'Q': { /* BINPERSID */
        if ((rc = pop(vm, &v)) != KN_OK) return rc;
        PickleValue *p = new_value(vm, PV_PERSID);
        if (!p) return vm_nomem(vm);
        p->persid = v;
        Pickle *a = vm->arena;
        if (a->npersids == a->persids_cap) {
            size_t cap = a->persids_cap ? a->persids_cap * 2 : 64;
            PickleValue **ids = realloc(a->persids, cap * sizeof *ids);
            if (!ids) return vm_nomem(vm);
            a->persids = ids;
            a->persids_cap = cap;
        }
        a->persids[a->npersids++] = p;
        return push(vm, p);
    }
    default:
        return vm_error(vm, "unsupported opcode%s", op >= 0x20 && op < 0x7f ? " (a text opcode of protocol 0/1?)" : "");
    }
}

int pickle_load_prefix(Pickle **out, const PickleValue **root, size_t *used, const uint8_t *data, size_t len,
                       const char *where) {
    *out = NULL;
    *root = NULL;
    *used = 0;
    Pickle *arena = calloc(1, sizeof *arena);
    if (!arena) return kn_error(KN_ENOMEM, "%s: out of memory", where);
    arena->limit = ARENA_BASE;
    Vm vm = {.arena = arena, .data = data, .len = len, .where = where};
    vm.none = new_value(&vm, PV_NONE);
    vm.true_ = new_value(&vm, PV_BOOL);
    vm.false_ = new_value(&vm, PV_BOOL);
    int rc = vm.none && vm.true_ && vm.false_ ? KN_OK : vm_nomem(&vm);
    if (rc == KN_OK) vm.true_->i = 1;
    int done = 0;
    while (rc == KN_OK && !done) {
        if (vm.pos >= len) {
            vm.op_at = len;
            rc = kn_error(KN_EFORMAT, "%s: pickle is truncated (ends at byte %zu without STOP)", where, len);
        } else {
            rc = step(&vm, root, &done);
        }
    }
    free(vm.stack);
    free(vm.marks);
    free(vm.memo);
    if (rc != KN_OK) {
        *root = NULL;
        pickle_free(arena);
        return rc;
    }
    *out = arena;
    *used = vm.pos;
    return KN_OK;
}

int pickle_load(Pickle **out, const PickleValue **root, const uint8_t *data, size_t len, const char *where) {
    size_t used;
    return pickle_load_prefix(out, root, &used, data, len, where);
}

size_t pickle_persids(const Pickle *p, PickleValue *const **ids) {
    *ids = p->persids;
    return p->npersids;
}

int pickle_is_global(const PickleValue *v, const char *module, const char *name) {
    return v && v->kind == PV_GLOBAL && strcmp(v->global.module, module) == 0 && strcmp(v->global.name, name) == 0;
}

const char *pickle_kind_name(PickleKind kind) {
    switch (kind) {
    case PV_NONE: return "None";
    case PV_BOOL: return "bool";
    case PV_INT: return "int";
    case PV_BIGINT: return "int (wider than 64 bits)";
    case PV_FLOAT: return "float";
    case PV_STR: return "str";
    case PV_TUPLE: return "tuple";
    case PV_LIST: return "list";
    case PV_DICT: return "dict";
    case PV_GLOBAL: return "global";
    case PV_CALL: return "call";
    case PV_PERSID: return "persistent id";
    }
    return "?";
}
