/* hash.c — see hash.h. */
#include "util/hash.h"

#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <xxhash.h>

struct HashState {
    XXH3_state_t *xx;
};

int hash_begin(HashState **out) {
    HashState *h = malloc(sizeof *h);
    if (!h) return kn_error(KN_ENOMEM, "out of memory");
    h->xx = XXH3_createState();
    if (!h->xx) {
        free(h);
        return kn_error(KN_ENOMEM, "out of memory");
    }
    XXH3_128bits_reset(h->xx);
    *out = h;
    return KN_OK;
}

void hash_update(HashState *h, const void *data, size_t len) { XXH3_128bits_update(h->xx, data, len); }

void hash_end(HashState *h, char hex[HASH_HEX_LEN]) {
    XXH128_hash_t d = XXH3_128bits_digest(h->xx);
    snprintf(hex, HASH_HEX_LEN, "%016llx%016llx", (unsigned long long)d.high64, (unsigned long long)d.low64);
    XXH3_freeState(h->xx);
    free(h);
}

int hash_file(const char *path, char hex[HASH_HEX_LEN]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return kn_error_errno("%s: cannot open", path);
    enum { BLOCK = 8 << 20 };
    char *buf = malloc(BLOCK);
    HashState *h = NULL;
    int rc = buf ? hash_begin(&h) : kn_error(KN_ENOMEM, "out of memory");
    while (rc == KN_OK) {
        ssize_t r = read(fd, buf, BLOCK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = kn_error_errno("%s: read failed", path);
        if (r <= 0) break;
        hash_update(h, buf, (size_t)r);
    }
    if (h && rc == KN_OK) hash_end(h, hex);
    else if (h) hash_end(h, (char[HASH_HEX_LEN]){0});
    free(buf);
    close(fd);
    return rc;
}
