/* knn_setup.c — what the commands that query a datastore (eval, query, generate) open, check and parse alike. */
#include "cli/cli.h"

#include "index/dstore_index.h"
#include "util/error.h"
#include "util/file.h"

#include <string.h>

void cli_knn_close(CliKnn *s) {
    index_free(s->index);
    dstore_close(s->ds);
    tokenizer_free(s->tk);
    gpt2_free(s->model);
    memset(s, 0, sizeof *s);
}

int cli_knn_open(CliKnn *s, const char *model_dir, const char *weights, const char *dstore, const char *index, int nprobe, int k) {
    memset(s, 0, sizeof *s);
    /* that the model, the datastore and the index belong together (weights hash, dimensions, key type, k) is
     * checked by the library itself (knn_setup_check), for every caller */
    int rc = cli_load_model(model_dir, weights, &s->model, &s->tk);
    if (rc == KN_OK && !dstore && !index) return KN_OK;
    if (rc == KN_OK) rc = dstore_open(&s->ds, dstore);
    if (rc == KN_OK) rc = dstore_index_open(&s->index, index, s->ds);
    if (rc == KN_OK && nprobe < 1) rc = kn_error(KN_EINVAL, "--nprobe %d: must be at least 1", nprobe);
    if (rc == KN_OK) rc = index_set_nprobe(s->index, nprobe);
    if (rc == KN_OK && k < 1) rc = kn_error(KN_EINVAL, "--k %d: must be at least 1", k);
    if (rc == KN_OK && k > dstore_size(s->ds)) rc = kn_error(KN_EINVAL, "--k %d: larger than the datastore (%lld entries)", k, (long long)dstore_size(s->ds));
    if (rc == KN_OK) dstore_advise(s->ds, DSTORE_RANDOM);
    if (rc != KN_OK) cli_knn_close(s);
    return rc;
}

int cli_parse_distance(const char *s, KnnDistance *d) {
    if (!strcmp(s, "l2sq")) *d = KNN_DIST_L2SQ;
    else if (!strcmp(s, "l2")) *d = KNN_DIST_L2;
    else return kn_error(KN_EINVAL, "--distance %s: expected l2sq (squared L2, as Faiss returns it) or l2", s);
    return KN_OK;
}

/* auto: bf16 where it runs natively (it is emulated, and slower than fp32, elsewhere). */
int cli_parse_precision(const char *s, Gpt2Precision *p) {
    if (!strcmp(s, "fp32")) *p = GPT2_FP32;
    else if (!strcmp(s, "bf16")) *p = GPT2_BF16;
    else if (!strcmp(s, "auto")) *p = gpt2_bf16_native() ? GPT2_BF16 : GPT2_FP32;
    else return kn_error(KN_EINVAL, "--precision %s: expected fp32, bf16 or auto", s);
    return KN_OK;
}

int cli_text_option(const char *text, const char *file, const char *text_flag, const char *file_flag, char **owned, const char **out, size_t *len) {
    *owned = NULL;
    *out = NULL;
    *len = 0;
    if (!!text == !!file) return kn_error(KN_EINVAL, "give exactly one of %s TEXT and %s FILE", text_flag, file_flag);
    int rc;
    if (file && (rc = file_read_all(file, owned, len)) != KN_OK) return rc;
    *out = file ? *owned : text;
    *len = strlen(*out);
    if (*len == 0) return kn_error(KN_EINVAL, "%s: the text is empty", file ? file : text_flag);
    return KN_OK;
}

int cli_encode_text(const Tokenizer *tk, const char *text, size_t len, const char *name, IdVec *ids) {
    int rc = tokenizer_encode(tk, text, len, 0, ids);
    if (rc != KN_OK) return kn_error_wrap(rc, "%s", name);
    if (ids->len == 0) return kn_error(KN_EINVAL, "%s: the text gives no tokens", name);
    return KN_OK;
}
