/* torchzip.c — see torchzip.h. Record layouts are those of PKWARE's APPNOTE.TXT (sections 4.3.7, 4.3.12,
 * 4.3.14-16, 4.5.3); all integers are little-endian. */
#include "model/torchzip.h"

#include "util/error.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_ZIP64_EOCD 0x06064b50u
#define SIG_ZIP64_LOCATOR 0x07064b50u

#define LOCAL_SIZE 30
#define CENTRAL_SIZE 46
#define EOCD_SIZE 22
#define ZIP64_EOCD_SIZE 56
#define ZIP64_LOCATOR_SIZE 20
#define MAX_COMMENT 65535

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* [off, off + len) lies inside [0, limit), without overflow. */
static int inside(uint64_t off, uint64_t len, uint64_t limit) { return off <= limit && len <= limit - off; }

/* Where the central directory is and how many entries it holds. */
typedef struct {
    uint64_t count, cd_offset, cd_size;
    uint64_t dir_end;   /* the central directory must end by here: the ZIP64 end record or the end record */
} Directory;

static int find_eocd(const uint8_t *data, size_t size, size_t *eocd, const char *path) {
    if (size < EOCD_SIZE) return kn_error(KN_EFORMAT, "%s: zip archive is truncated (%zu bytes)", path, size);
    size_t lowest = size - EOCD_SIZE > MAX_COMMENT ? size - EOCD_SIZE - MAX_COMMENT : 0;
    for (size_t pos = size - EOCD_SIZE + 1; pos-- > lowest;) {
        if (rd32(data + pos) == SIG_EOCD && rd16(data + pos + 20) <= size - EOCD_SIZE - pos) {
            *eocd = pos;
            return KN_OK;
        }
    }
    return kn_error(KN_EFORMAT, "%s: no zip end-of-central-directory record (the file is truncated or not a zip)",
                    path);
}

static int read_directory(Directory *dir, const uint8_t *data, size_t size, const char *path) {
    size_t eocd = 0;
    int rc = find_eocd(data, size, &eocd, path);
    if (rc != KN_OK) return rc;
    const uint8_t *e = data + eocd;
    uint16_t disk = rd16(e + 4), cd_disk = rd16(e + 6), here = rd16(e + 8), total = rd16(e + 10);
    uint32_t cd_size = rd32(e + 12), cd_offset = rd32(e + 16);
    dir->count = total;
    dir->cd_size = cd_size;
    dir->cd_offset = cd_offset;
    dir->dir_end = eocd;
    int zip64 = eocd >= ZIP64_LOCATOR_SIZE && rd32(e - ZIP64_LOCATOR_SIZE) == SIG_ZIP64_LOCATOR;
    if (zip64) {
        const uint8_t *loc = e - ZIP64_LOCATOR_SIZE;
        uint64_t at = rd64(loc + 8);
        if (rd32(loc + 4) != 0 || rd32(loc + 16) > 1)
            return kn_error(KN_EFORMAT, "%s: multi-disk zip archives are not supported", path);
        if (!inside(at, ZIP64_EOCD_SIZE, eocd - ZIP64_LOCATOR_SIZE) || rd32(data + at) != SIG_ZIP64_EOCD)
            return kn_error(KN_EFORMAT, "%s: ZIP64 locator points to no ZIP64 end record (corrupted zip)", path);
        const uint8_t *z = data + at;
        if (rd32(z + 16) != 0 || rd32(z + 20) != 0 || rd64(z + 24) != rd64(z + 32))
            return kn_error(KN_EFORMAT, "%s: multi-disk zip archives are not supported", path);
        /* The 32-bit fields are 0xFFFF... when they overflowed; otherwise both records must agree. */
        if ((total != 0xffff && total != rd64(z + 32)) || (cd_size != 0xffffffffu && cd_size != rd64(z + 40)) ||
            (cd_offset != 0xffffffffu && cd_offset != rd64(z + 48)))
            return kn_error(KN_EFORMAT, "%s: zip end record and ZIP64 end record disagree (corrupted zip)", path);
        dir->count = rd64(z + 32);
        dir->cd_size = rd64(z + 40);
        dir->cd_offset = rd64(z + 48);
        dir->dir_end = at;
    } else if (disk != 0 || cd_disk != 0 || here != total) {
        return kn_error(KN_EFORMAT, "%s: multi-disk zip archives are not supported", path);
    }
    if (!inside(dir->cd_offset, dir->cd_size, dir->dir_end))
        return kn_error(KN_EFORMAT, "%s: zip central directory (offset %llu, %llu bytes) lies outside the file "
                        "(truncated or corrupted zip)", path, (unsigned long long)dir->cd_offset,
                        (unsigned long long)dir->cd_size);
    if (dir->count > dir->cd_size / CENTRAL_SIZE)
        return kn_error(KN_EFORMAT, "%s: zip central directory of %llu bytes cannot hold %llu entries (corrupted zip)",
                        path, (unsigned long long)dir->cd_size, (unsigned long long)dir->count);
    return KN_OK;
}

/* The 64-bit sizes and offset that replace the saturated 32-bit ones (APPNOTE 4.5.3: present in this order,
 * each only if its 32-bit field is 0xFFFFFFFF). */
static int read_zip64_extra(const uint8_t *extra, size_t len, uint64_t *usize, uint64_t *csize, uint64_t *offset,
                            const char *name, const char *path) {
    uint64_t *fields[3] = {usize, csize, offset};
    for (size_t at = 0; at + 4 <= len;) {
        uint16_t id = rd16(extra + at), n = rd16(extra + at + 2);
        if (n > len - at - 4) break;   /* a malformed trailing field: the sizes check below decides */
        if (id == 0x0001) {
            size_t got = 0;
            for (int f = 0; f < 3; f++) {
                if (*fields[f] != 0xffffffffu) continue;
                if (got + 8 > n)
                    return kn_error(KN_EFORMAT, "%s: zip entry %s: ZIP64 extra field is too short", path, name);
                *fields[f] = rd64(extra + at + 4 + got);
                got += 8;
            }
            return KN_OK;
        }
        at += 4 + (size_t)n;
    }
    return KN_OK;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const ZipEntry *)a)->name, ((const ZipEntry *)b)->name);
}

/* Fills zip->entries[i] from the central header at *at (advanced past it). names_used counts the name block. */
static int read_entry(TorchZip *zip, const uint8_t *data, const Directory *dir, uint64_t *at, size_t *names_used,
                      const char *path) {
    uint64_t cd_end = dir->cd_offset + dir->cd_size;
    const uint8_t *c = data + *at;
    if (!inside(*at, CENTRAL_SIZE, cd_end) || rd32(c) != SIG_CENTRAL)
        return kn_error(KN_EFORMAT, "%s: zip central directory entry %zu is corrupted", path, zip->count);
    uint16_t flags = rd16(c + 8), method = rd16(c + 10);
    uint16_t name_len = rd16(c + 28), extra_len = rd16(c + 30), comment_len = rd16(c + 32);
    uint64_t csize = rd32(c + 20), usize = rd32(c + 24), offset = rd32(c + 42);
    if (!inside(*at + CENTRAL_SIZE, (uint64_t)name_len + extra_len + comment_len, cd_end))
        return kn_error(KN_EFORMAT, "%s: zip central directory entry %zu runs past the directory", path, zip->count);
    const uint8_t *raw_name = c + CENTRAL_SIZE;
    if (name_len == 0 || memchr(raw_name, '\0', name_len))
        return kn_error(KN_EFORMAT, "%s: zip entry %zu has an empty name or one with a NUL byte", path, zip->count);
    char *name = zip->names + *names_used;
    memcpy(name, raw_name, name_len);
    name[name_len] = '\0';
    *names_used += (size_t)name_len + 1;
    *at += CENTRAL_SIZE + (uint64_t)name_len + extra_len + comment_len;

    if (flags & 1) return kn_error(KN_EFORMAT, "%s: zip entry %s is encrypted", path, name);
    int rc = read_zip64_extra(raw_name + name_len, extra_len, &usize, &csize, &offset, name, path);
    if (rc != KN_OK) return rc;
    if (method == 0 && csize != usize)
        return kn_error(KN_EFORMAT, "%s: zip entry %s is stored but its sizes differ (%llu vs %llu)", path, name,
                        (unsigned long long)csize, (unsigned long long)usize);
    /* Entries' data precedes the central directory. */
    if (!inside(offset, LOCAL_SIZE, dir->cd_offset) || rd32(data + offset) != SIG_LOCAL)
        return kn_error(KN_EFORMAT, "%s: zip entry %s: no local header at offset %llu (corrupted zip)", path, name,
                        (unsigned long long)offset);
    const uint8_t *l = data + offset;
    uint16_t local_name_len = rd16(l + 26), local_extra_len = rd16(l + 28);
    if (local_name_len != name_len || !inside(offset + LOCAL_SIZE, name_len, dir->cd_offset) ||
        memcmp(l + LOCAL_SIZE, raw_name, name_len) != 0)
        return kn_error(KN_EFORMAT, "%s: zip entry %s: local header names another entry (corrupted zip)", path, name);
    uint64_t start = offset + LOCAL_SIZE + name_len + local_extra_len;
    if (!inside(start, csize, dir->cd_offset))
        return kn_error(KN_EFORMAT, "%s: zip entry %s (%llu bytes at offset %llu) runs past the data area "
                        "(truncated or corrupted zip)", path, name, (unsigned long long)csize, (unsigned long long)start);
    ZipEntry *entry = &zip->entries[zip->count++];
    entry->name = name;
    entry->data = data + start;
    entry->size = csize;
    entry->crc32 = rd32(c + 16);
    entry->method = method;
    return KN_OK;
}

int torchzip_open(TorchZip *zip, const uint8_t *data, size_t size, const char *path) {
    memset(zip, 0, sizeof *zip);
    zip->path = path;
    Directory dir;
    int rc = read_directory(&dir, data, size, path);
    if (rc != KN_OK) return rc;
    /* Both allocations are bounded by the directory's size, itself inside the file. */
    zip->entries = malloc((dir.count ? dir.count : 1) * sizeof *zip->entries);
    zip->names = malloc(dir.cd_size + dir.count + 1);
    if (!zip->entries || !zip->names) {
        torchzip_close(zip);
        return kn_error(KN_ENOMEM, "%s: out of memory for %llu zip entries", path, (unsigned long long)dir.count);
    }
    uint64_t at = dir.cd_offset;
    size_t names_used = 0;
    while (zip->count < dir.count && rc == KN_OK) rc = read_entry(zip, data, &dir, &at, &names_used, path);
    if (rc == KN_OK) {
        qsort(zip->entries, zip->count, sizeof *zip->entries, cmp_entry);
        for (size_t i = 1; i < zip->count && rc == KN_OK; i++) {
            if (strcmp(zip->entries[i - 1].name, zip->entries[i].name) == 0)
                rc = kn_error(KN_EFORMAT, "%s: zip entry %s appears twice", path, zip->entries[i].name);
        }
    }
    if (rc != KN_OK) torchzip_close(zip);
    return rc;
}

void torchzip_close(TorchZip *zip) {
    free(zip->entries);
    free(zip->names);
    zip->entries = NULL;
    zip->names = NULL;
    zip->count = 0;
}

const ZipEntry *torchzip_find(const TorchZip *zip, const char *name) {
    size_t lo = 0, hi = zip->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(zip->entries[mid].name, name);
        if (c == 0) return &zip->entries[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

int torchzip_get(const TorchZip *zip, const char *name, int check_crc, const ZipEntry **out) {
    const ZipEntry *e = torchzip_find(zip, name);
    *out = NULL;
    if (!e) return kn_error(KN_ENOTFOUND, "%s: zip entry %s is missing", zip->path, name);
    if (e->method != 0)
        return kn_error(KN_EFORMAT, "%s: zip entry %s is compressed (method %u), which torch.save never does", zip->path,
                        name, (unsigned)e->method);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    check_crc = 0; /* let the fuzzer's mutations of data.pkl reach the unpickler (fuzz/fuzz_torchckpt.c) */
#endif
    if (check_crc) {
        /* zlib's crc32 takes a uInt length: feed it in pieces so that no entry is too big. */
        uLong crc = crc32(0L, Z_NULL, 0);
        for (uint64_t done = 0; done < e->size;) {
            uInt piece = e->size - done > (1u << 30) ? (1u << 30) : (uInt)(e->size - done);
            crc = crc32(crc, e->data + done, piece);
            done += piece;
        }
        if ((uint32_t)crc != e->crc32)
            return kn_error(KN_EFORMAT, "%s: zip entry %s fails its CRC-32 check (corrupted file)", zip->path, name);
    }
    *out = e;
    return KN_OK;
}
