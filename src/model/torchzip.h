/* torchzip.h — the entries of a zip archive held in memory, as torch.save writes them (PKWARE APPNOTE 6.3).
 *
 * Read from the central directory, found through the end-of-central-directory record (searched backwards,
 * so an archive comment is allowed) and, when present, the ZIP64 end record and locator and the entries'
 * ZIP64 extra fields (torch writes them; they matter past 4 GiB). Each entry's data starts after its local
 * header, whose own name and extra lengths are used (torch pads the local extra field so that data is
 * 64-byte aligned, and writes sizes only in the central directory). Nothing is decompressed: torch.save
 * stores every entry, so a compressed one is reported, not read. Every offset and length is checked
 * against the archive before use; multi-disk and encrypted archives are refused. */
#ifndef KN_TORCHZIP_H
#define KN_TORCHZIP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;        /* NUL-terminated, owned by the TorchZip */
    const uint8_t *data;     /* the entry's bytes as stored, inside the archive image */
    uint64_t size;           /* stored (compressed) size in bytes */
    uint32_t crc32;          /* as the central directory says */
    uint16_t method;         /* 0 stored, 8 deflated, ... */
} ZipEntry;

typedef struct {
    ZipEntry *entries;       /* sorted by name (names are unique) */
    size_t count;
    char *names;             /* one block with every entry name */
    const char *path;        /* borrowed, for messages */
} TorchZip;

/* Reads the directory of the archive image data[0..size). path (borrowed until torchzip_close) names the
 * file in messages. On failure nothing needs closing. */
int torchzip_open(TorchZip *zip, const uint8_t *data, size_t size, const char *path);
void torchzip_close(TorchZip *zip);

/* The entry called name, or NULL. */
const ZipEntry *torchzip_find(const TorchZip *zip, const char *name);

/* The entry called name, checked to be stored (not compressed) and, when check_crc, to match its CRC-32.
 * KN_ENOTFOUND with a message when absent. */
int torchzip_get(const TorchZip *zip, const char *name, int check_crc, const ZipEntry **out);

#endif
