#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<name>/ from the test fixtures and from small valid files made here
(Python's own pickle and numpy, hand-written safetensors and tokenizer.json). The datastore manifests and the
index sidecar come from fuzz/make_seeds.sh, which runs knnlm. Run from the repository root; afterwards
minimize with fuzz/run.sh --merge. Needs python3 with numpy (no torch)."""
import collections, io, json, os, pickle, shutil, struct, sys, zipfile

import numpy as np

OUT = "fuzz/corpus"
TD = "tests/data"


def put(name, fname, data):
    os.makedirs(f"{OUT}/{name}", exist_ok=True)
    with open(f"{OUT}/{name}/{fname}", "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def copy(name, src, fname=None):
    put(name, fname or os.path.basename(src), open(src, "rb").read())


# ---- safetensors: the fixture, and small files written here ----
def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


copy("safetensors", f"{TD}/tensorfile/mixed.safetensors")
put("safetensors", "small.safetensors", safetensors({
    "wte": ("F32", [2, 3], np.arange(6, dtype="<f4").tobytes()),
    "b": ("F16", [3], np.ones(3, dtype="<f2").tobytes()),
    "s": ("BF16", [], b"\x80\x3f"),
    "i": ("I64", [2], np.array([1, -1], dtype="<i8").tobytes()),
    "e": ("U8", [0, 4], b""),
}, {"format": "pt"}))
put("safetensors", "kinds.safetensors", safetensors({
    k: (k, [1], b"\x01" * n) for k, n in
    [("F64", 8), ("I32", 4), ("I16", 2), ("I8", 1), ("BOOL", 1)]}))

# ---- torch zip checkpoints (torchzip, torchckpt) and their pickles ----
for f in ["p2.bin", "p4.bin", "zip64.bin", "noncontig.bin", "legacy.bin"]:
    copy("torchckpt", f"{TD}/tensorfile/{f}")
    copy("torchzip", f"{TD}/tensorfile/{f}")
for f in ["p2.bin", "p4.bin", "noncontig.bin"]:
    with zipfile.ZipFile(f"{TD}/tensorfile/{f}") as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        put("pickle", f.replace(".bin", ".pkl"), z.read(pkl))
legacy = open(f"{TD}/tensorfile/legacy.bin", "rb").read()
put("pickle", "legacy.pkl", legacy)
# a stored zip with a comment and a deflated entry (refused when read, listed by the directory)
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("a/data.pkl", pickle.dumps({}, protocol=2))
    z.writestr(zipfile.ZipInfo("a/data/0"), b"\0" * 16)
    z.writestr("a/deflated", b"x" * 100, compress_type=zipfile.ZIP_DEFLATED)
    z.comment = b"comment"
put("torchzip", "comment.zip", buf.getvalue())


class Glob:
    """Pickles as a GLOBAL module.name call, like torch's rebuild functions."""
    def __init__(self, mod, name, args):
        self.mod, self.name, self.args = mod, name, args

    def __reduce__(self):
        return (Fn(self.mod, self.name), self.args)


class Fn:
    def __init__(self, mod, name):
        self.mod, self.name = mod, name

    def __reduce__(self):
        return f"{self.mod}.{self.name}"


values = {"ints": [0, 1, -1, 255, 65535, 2**31, -2**63, 2**63 - 1], "f": 1.5, "s": "한국어", "b": b"\x00\xff",
          "t": (1, (2, 3), ()), "n": None, "bools": [True, False], "d": {"x": [1, 2], 3: "y"},
          "od": collections.OrderedDict([("a", 1), ("b", 2)])}
shared = [1, 2]
values["shared"] = [shared, shared]
for proto in (2, 3, 4, 5):
    put("pickle", f"values.p{proto}.pkl", pickle.dumps(values, protocol=proto))

# ---- tokenizer.json: the KoGPT2 file cut to a small vocabulary, and a tiny hand-written one ----
tk = json.load(open(f"{TD}/tokenizer/tokenizer.json", encoding="utf-8"))
vocab = tk["model"]["vocab"]
by_id = sorted(vocab, key=vocab.get)
keep = set(by_id[:400])
merges = []
for m in tk["model"]["merges"]:
    a, b = m.split(" ") if isinstance(m, str) else m
    if a in keep and b in keep and a + b in keep:
        merges.append(m)
order = [t for t in by_id if t in keep]
tk["model"]["vocab"] = {t: i for i, t in enumerate(order)}
tk["model"]["merges"] = merges
tk["added_tokens"] = [dict(a, id=tk["model"]["vocab"][a["content"]]) for a in tk["added_tokens"]
                      if a["content"] in keep][:40]
put("tokenizer", "kogpt2-small.json", json.dumps(tk, ensure_ascii=False))
tiny = {"version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 3, "content": "<x>", "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": False}],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Metaspace", "replacement": "_", "prepend_scheme": "first", "split": False}]},
        "post_processor": None,
        "decoder": {"type": "Metaspace", "replacement": "_", "add_prefix_space": False},
        "model": {"type": "BPE", "unk_token": "u", "vocab": {"u": 0, "_": 1, "a": 2}, "merges": [["_", "a"]][:0]}}
put("tokenizer", "tiny.json", json.dumps(tiny))

# ---- config.json ----
copy("config", f"{TD}/tiny-random/config.json")
put("config", "full.json", json.dumps({
    "model_type": "gpt2", "n_layer": 2, "n_head": 4, "n_embd": 64, "n_inner": None, "n_positions": 128,
    "vocab_size": 1000, "layer_norm_epsilon": 1e-5, "activation_function": "gelu", "bos_token_id": 0,
    "eos_token_id": 1, "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
    "tie_word_embeddings": False}, indent=2))
put("config", "relu.json", '{"activation_function": "relu", "n_embd": 12, "n_head": 3}')

# ---- .npy: fixtures and numpy's own files (versions 1.0, 2.0, 3.0) ----
for f in ["case0.ids.npy", "case0.final_hidden.npy"]:
    copy("npy", f"{TD}/tiny-random/{f}")
for arr, fname in [(np.zeros((), dtype="<f8"), "scalar.npy"), (np.arange(3, dtype="u1"), "u8.npy"),
                   (np.ones((2, 0, 3, 1), dtype="<f2"), "empty4d.npy"), (np.arange(4, dtype="<i4"), "i4.npy")]:
    b = io.BytesIO()
    np.save(b, arr)
    put("npy", fname, b.getvalue())
for version in [(2, 0), (3, 0)]:
    b = io.BytesIO()
    arr = np.arange(6, dtype="<i8").reshape(2, 3)
    np.lib.format.write_array(b, arr, version=version)
    put("npy", f"v{version[0]}.npy", b.getvalue())

# ---- corpus: the first byte picks the options (fuzz_corpus.c) ----
lines = open("data/kowiki-sample/valid.txt", encoding="utf-8").read().splitlines()
put("corpus", "lines.txt", b"\x00" + "\n".join(l[:200] for l in lines[:6]).encode() + b"\n")
put("corpus", "crlf.txt", b"\x01" + "\r\n".join(["ab ab", "  ", "안녕 doc", "\t", "<doc 아님"]).encode() + b"\r\n")
wiki = ('<doc id="1" url="https://ko.wikipedia.org/wiki?curid=1" title="안녕">\n안녕\n\n' + lines[0][:120] +
        '\n</doc>\n<doc id="2" url="x" title="ab">\nab\nab ab\n</doc>\n')
put("corpus", "wiki.txt", b"\x02" + wiki.encode())
put("corpus", "wiki-auto-limit.txt", bytes([0x18]) + wiki.encode())
put("corpus", "invalid-utf8.txt", b"\x04ab \xff\xfe\n\xc3(\n")
print("seeds written to", OUT)
