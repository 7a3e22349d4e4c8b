/* torchckpt.h — the tensors of a PyTorch zip checkpoint (torch.save since 1.6) held in memory.
 *
 * The zip (torchzip.h) holds <archive>/data.pkl, a pickle (pickle.h) of the state dict, and <archive>/data/<key>,
 * the raw little-endian bytes of each storage; <archive> is any single folder name. The state dict is an
 * OrderedDict (or dict) of name -> tensor, each tensor pickled as
 *     torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata])
 * possibly wrapped in torch._utils._rebuild_parameter[_with_state](tensor, requires_grad, hooks[, state]),
 * with storage the persistent id ('storage', torch.<Type>Storage, key, location, numel). Only these calls
 * are understood; nothing is executed. The legacy (pre-1.6) format pickles the same state dict and differs
 * only in where the storages are (torchlegacy.h), so the state-dict walk below serves both.
 *
 * Checked: data.pkl's CRC-32 (it is small; the storages are not read at open), the storage type is one we
 * have a dtype for, data/<key> exists, is stored and holds exactly numel elements, the tensor lies inside its
 * storage (offset + numel), and its strides are row-major contiguous (a non-contiguous tensor is refused
 * by name: we hand out pointers, not strided views). Tensors may share a storage (tied weights). Plain
 * Python values in the dict (ints, strings, None, ...) are skipped; any other call is refused, since it may
 * be a tensor in a form we do not understand, and so is a nested dict (a training checkpoint such as
 * {"model": state_dict, "optimizer": ...} would otherwise open as zero tensors). A "byteorder" entry other
 * than "little" is refused. */
#ifndef KN_TORCHCKPT_H
#define KN_TORCHCKPT_H

#include "model/pickle.h"
#include "model/tensorfile.h"
#include "model/torchzip.h"

#include <stddef.h>
#include <stdint.h>

/* Appends the tensors of the zip image data[0..size) to list; path is only for messages. On error the
 * list may hold some tensors; the caller frees it. */
int torchckpt_read(TensorList *list, const uint8_t *data, size_t size, const char *path);

/* The state dict root (already unpickled) against the open zip, whose data.pkl is archive + "data.pkl".
 * Separate so that tests can feed it hostile pickles without rewriting CRCs. */
int torchckpt_read_state(TensorList *list, const PickleValue *root, const TorchZip *zip, const char *archive,
                         const char *path);


/* ---- Shared with the legacy reader (torchlegacy.h), whose state dict is the same but whose storages
 * live elsewhere. ---- */

/* A storage as a persistent id names it: ('storage', torch.<Type>Storage, key, location, numel) in the zip
 * format. The legacy format appends view metadata, None or (view_key, offset, view_numel), and the id then
 * stands for elements [offset, offset + view_numel) of storage key (torch stopped writing views in 0.4, but
 * its loader still reads them). */
typedef struct {
    DType dtype;
    const char *key;                    /* borrowed from the pickle */
    uint64_t numel;                     /* of storage key */
    int is_view;
    uint64_t view_offset, view_numel;   /* in elements, when is_view */
} TorchStorageId;

/* Parses persid (a PV_PERSID); legacy allows the sixth item. tensor names the tensor in messages, or is
 * NULL when the id is read on its own. */
int torchckpt_storage_id(TorchStorageId *out, const PickleValue *persid, int legacy, const char *tensor,
                         const char *path);

/* Where a container keeps its storages: bytes() sets *data to the first of id->numel elements of id->dtype
 * of storage id->key, all inside the file, or fails with a message naming path and tensor. */
typedef struct {
    int (*bytes)(void *ctx, const TorchStorageId *id, const char *tensor, const uint8_t **data);
    void *ctx;
    int legacy;                 /* persistent ids may carry view metadata */
    const char *pickle_name;    /* the state dict's pickle, for messages ("data.pkl") */
} TorchStorages;

/* The state dict root against storages: what torchckpt_read_state() does for a zip. */
int torchckpt_read_dict(TensorList *list, const PickleValue *root, const TorchStorages *storages,
                        const char *path);

#endif
