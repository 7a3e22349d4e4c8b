/* hash.h — content hashes for manifests: XXH3-128 (xxhash), printed as 32 hex digits.
 *
 * Not cryptographic: they tell a corpus, a weights file or a datastore from another one, fast enough to hash
 * a 500 MB checkpoint or a multi-GB corpus in a second or two. */
#ifndef KN_HASH_H
#define KN_HASH_H

#include <stddef.h>

#define HASH_HEX_LEN 33 /* 32 hex digits + NUL */

typedef struct HashState HashState;

int hash_begin(HashState **out);
void hash_update(HashState *h, const void *data, size_t len);
/* Writes the digest as hex and frees the state. */
void hash_end(HashState *h, char hex[HASH_HEX_LEN]);

/* The digest of a whole file (read in 8 MiB blocks, so any size works). */
int hash_file(const char *path, char hex[HASH_HEX_LEN]);

#endif
