/* torchlegacy.h — the tensors of a legacy PyTorch checkpoint (torch.save before 1.6, or since then with
 * _use_new_zipfile_serialization=False; many pytorch_model.bin files on the Hugging Face Hub) held in memory.
 *
 * The file is five pickles in a row, then the raw storages (torch/serialization.py, _legacy_save):
 *   1. the magic number 0x1950a86a20f9469cfc6c (a LONG1 of 10 bytes),
 *   2. the protocol version 1001,
 *   3. sys_info, a dict {protocol_version, little_endian, type_sizes},
 *   4. the state dict, tensors as in the zip format (torchckpt.h) except that each storage's persistent id
 *      has a sixth item, the view metadata (None since torch 0.4),
 *   5. the storage keys, a list of strings (sorted, as torch writes them),
 * and then, for each key of (5) in that order, its element count as 8 bytes little-endian followed by that
 * many elements of the storage's type, little-endian. A record's size depends on its type, which only the
 * persistent ids of (4) give: every id the pickle holds is read first (pickle_persids), so that a storage
 * used by nothing we return still has a known length.
 *
 * The pickles go through the same unpickler as the zip's data.pkl (pickle.h: nothing is executed), and the
 * state dict through the same reader (torchckpt_read_dict). Checked besides: the magic number and protocol
 * version (a clear error for either), sys_info's little_endian (a big-endian file is refused: torch before
 * 1.6 wrote the element counts in the machine's order), that every storage an id names is listed, has one
 * type and element count in all ids, and that its record's count agrees; that every listed key is named by
 * some id; that no record runs past the end of the file and nothing follows the last one. Storage data may
 * be unaligned (records are packed). */
#ifndef KN_TORCHLEGACY_H
#define KN_TORCHLEGACY_H

#include "model/tensorfile.h"

#include <stddef.h>
#include <stdint.h>

/* 1 when data[0..size) starts as a legacy torch file does: a protocol 2+ pickle of the magic number. */
int torchlegacy_detect(const uint8_t *data, size_t size);

/* Appends the tensors of the legacy checkpoint data[0..size) to list; path is only for messages. On error
 * the list may hold some tensors; the caller frees it. */
int torchlegacy_read(TensorList *list, const uint8_t *data, size_t size, const char *path);

#endif
