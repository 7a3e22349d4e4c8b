#!/usr/bin/python3
"""Writes the small checkpoint fixtures of tests/test_tensorfile.c and expected.json, their values as
PyTorch reads them. Run from the repository root with Debian's python3 (PyTorch 1.13):

    /usr/bin/python3 tests/data/tensorfile/make_fixtures.py

The output is deterministic (fixed seed; torch writes fixed zip timestamps), so re-running it leaves git
clean; legacy.bin alone is only written when absent (the legacy format keys storages by memory address). SOURCE.md beside this file says what each fixture is for."""
import collections
import json
import os
import struct
import zipfile

import torch

OUT = os.path.dirname(os.path.abspath(__file__))


def state_dict():
    """Every storage type we read, a view with a storage offset, shared storage, a Parameter, a scalar,
    an empty tensor, a size-1 dimension with an odd stride and a plain int (to be skipped)."""
    g = torch.Generator().manual_seed(20240601)
    base = torch.randn(3, 4, generator=g)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(2, 3, generator=g)
    sd["f16"] = torch.randn(5, generator=g).half()
    sd["bf16"] = torch.randn(2, 2, generator=g).bfloat16()
    sd["f64"] = torch.randn(3, generator=g).double()
    sd["i64"] = torch.tensor([-3, 0, 1 << 40], dtype=torch.int64)
    sd["i32"] = torch.tensor([-7, 2147483647], dtype=torch.int32)
    sd["i16"] = torch.tensor([-32768, 5], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 127, 0], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["base"] = base
    sd["row1"] = base[1]                   # storage offset 4, shares base's storage
    sd["tied"] = base                      # the same tensor again, like lm_head / wte
    sd["param"] = torch.nn.Parameter(torch.randn(2, 2, generator=g))   # _rebuild_parameter
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["odd_stride"] = torch.arange(4.0).reshape(4, 1).t()   # shape (1, 4), stride (1, 1): contiguous
    sd["count"] = 7                        # not a tensor
    return sd


def expected_of(sd):
    out = {}
    for name, t in sd.items():
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach()
        values = t.reshape(-1).tolist() if t.dtype != torch.bool else [int(v) for v in t.reshape(-1).tolist()]
        if t.dtype in (torch.float16, torch.bfloat16):
            values = t.float().reshape(-1).tolist()
        out[name] = {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "values": values}
    return out


ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
             torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
             torch.bool: "BOOL"}


def write_safetensors(path, tensors, metadata):
    """Our own writer (no safetensors package here), unpadded so that the data is unaligned."""
    header, blobs, at = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    js = json.dumps(header, separators=(",", ":")).encode()
    assert (8 + len(js)) % 8 != 0, "want unaligned data"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js + b"".join(blobs))


def rewrite_as_zip64(src, dst, comment):
    """The same archive with every central-directory size and offset moved into a ZIP64 extra field, the
    end record saturated (0xFFFF...) so that only the ZIP64 end record holds the truth, and a comment."""
    data = open(src, "rb").read()
    zf = zipfile.ZipFile(src)
    infos = zf.infolist()
    body = data[:zf.start_dir]   # local headers and data, kept byte for byte
    cd = b""
    for i in infos:
        name = i.filename.encode()
        extra = struct.pack("<HHQQQ", 1, 24, i.file_size, i.compress_size, i.header_offset)
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, i.flag_bits, i.compress_type, 0, 0x21,
                          i.CRC, 0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0, 0xFFFFFFFF)
        cd += name + extra
    z64_at = len(body) + len(cd)
    z64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(infos), len(infos), len(cd), len(body))
    loc = struct.pack("<IIQI", 0x07064B50, 0, z64_at, 1)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, len(comment))
    with open(dst, "wb") as f:
        f.write(body + cd + z64 + loc + eocd + comment)


def check_same(a, b):
    assert list(a.keys()) == list(b.keys()), (list(a.keys()), list(b.keys()))
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def main():
    torch.manual_seed(0)
    sd = state_dict()
    expected = expected_of(sd)

    p = lambda name: os.path.join(OUT, name)
    torch.save(sd, p("p2.bin"))                          # default: pickle protocol 2
    torch.save(sd, p("p4.bin"), pickle_protocol=4)       # FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE
    rewrite_as_zip64(p("p2.bin"), p("zip64.bin"), b"an archive comment, made by make_fixtures.py")
    for name in ("p2.bin", "p4.bin", "zip64.bin"):
        check_same(sd, torch.load(p(name)))
        assert zipfile.ZipFile(p(name)).testzip() is None

    torch.save({"ok": torch.zeros(2), "w": torch.arange(6.0).reshape(2, 3).t()}, p("noncontig.bin"))
    if not os.path.exists(p("legacy.bin")):   # its storage keys are memory addresses: not reproducible
        torch.save(collections.OrderedDict(w=torch.ones(2)), p("legacy.bin"), _use_new_zipfile_serialization=False)

    st = collections.OrderedDict((k, v.detach()) for k, v in sd.items()
                                 if isinstance(v, torch.Tensor) and k not in ("row1", "tied", "odd_stride"))
    write_safetensors(p("mixed.safetensors"), st, {"format": "pt", "note": "make_fixtures.py"})

    with open(p("expected.json"), "w") as f:   # one tensor a line
        f.write("{\n" + ",\n".join(" %s: %s" % (json.dumps(k), json.dumps(v)) for k, v in expected.items()) + "\n}\n")


if __name__ == "__main__":
    main()
