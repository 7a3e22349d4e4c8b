/* fuzz_config.c — the config.json reader (src/model/config.c) on arbitrary files: what it accepts must satisfy
 * the invariants the model code relies on. */
#include "fuzz.h"
#include "model/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Gpt2Config c;
    int rc = gpt2_config_load(&c, fuzz_as_file(data, size));
    fuzz_check_error(rc);
    if (rc != KN_OK) return 0;
    FUZZ_ASSERT(c.n_layer >= 1 && c.n_head >= 1 && c.n_embd >= 1 && c.n_inner >= 1);
    FUZZ_ASSERT(c.n_positions >= 1 && c.vocab_size >= 1);
    FUZZ_ASSERT(c.n_embd % c.n_head == 0);
    FUZZ_ASSERT(c.ln_eps > 0 && c.ln_eps < 1);
    FUZZ_ASSERT(c.activation == ACT_GELU_NEW || c.activation == ACT_GELU_ERF || c.activation == ACT_RELU);
    FUZZ_ASSERT(c.bos_token_id >= -1 && c.eos_token_id >= -1);
    return 0;
}
