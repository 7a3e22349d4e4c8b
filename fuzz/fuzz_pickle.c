/* fuzz_pickle.c — the unpickler (src/model/pickle.c) on arbitrary byte streams, then a walk of the value graph
 * it returns (bounded in depth, as pickle.h asks of consumers, since memo references can make it cyclic). */
#include "fuzz.h"
#include "model/pickle.h"

static size_t visited;

static void walk(const PickleValue *v, int depth) {
    if (!v || depth > 64 || ++visited > 100000) return;
    FUZZ_ASSERT(pickle_kind_name(v->kind) != NULL);
    switch (v->kind) {
    case PV_STR:
        FUZZ_ASSERT(v->str.s != NULL && v->str.s[v->str.len] == '\0');
        break;
    case PV_TUPLE:
    case PV_LIST:
    case PV_DICT:
        FUZZ_ASSERT(v->seq.count <= v->seq.cap);
        if (v->kind == PV_DICT) FUZZ_ASSERT(v->seq.count % 2 == 0);
        for (size_t i = 0; i < v->seq.count; i++) walk(v->seq.items[i], depth + 1);
        break;
    case PV_GLOBAL:
        FUZZ_ASSERT(v->global.module && v->global.name);
        (void)pickle_is_global(v, "torch._utils", "_rebuild_tensor_v2");
        break;
    case PV_CALL:
        walk(v->call.callable, depth + 1);
        walk(v->call.args, depth + 1);
        walk(v->call.state, depth + 1);
        break;
    case PV_PERSID:
        walk(v->persid, depth + 1);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Pickle *p = NULL;
    const PickleValue *root = NULL;
    int rc = pickle_load(&p, &root, data, size, "fuzz.pkl");
    fuzz_check_error(rc);
    if (rc == KN_OK) {
        FUZZ_ASSERT(root != NULL);
        visited = 0;
        walk(root, 0);
    }
    pickle_free(p);
    return 0;
}
