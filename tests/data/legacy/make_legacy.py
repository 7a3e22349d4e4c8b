#!/usr/bin/python3
"""Writes the legacy-format (pre-1.6) torch checkpoints of tests/test_tensorfile.c and test_torchckpt.c.
Run from the repository root with Debian's python3 (PyTorch 1.13):

    /usr/bin/python3 tests/data/legacy/make_legacy.py [--force]

The state dict is the one of ../tensorfile/make_fixtures.py (same seed, same tensors), so the values the C
tests compare with are ../tensorfile/expected.json, written there from the tensors themselves (tolist(), not
from any file); this script checks that expected.json still matches. The legacy format names storages by
memory address, so its bytes differ from run to run: existing files are kept unless --force is given.
SOURCE.md beside this file says what each fixture is for."""
import importlib.util
import json
import os
import sys

import torch

OUT = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("make_fixtures", os.path.join(OUT, "..", "tensorfile", "make_fixtures.py"))
make_fixtures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_fixtures)


def layout(path):
    """Walks the file as torch's _legacy_load does, without torch: five pickles, then for each listed key an
    8-byte little-endian element count and the elements, up to the end of the file. Returns the number of
    storages and the offset of the first record."""
    import pickle
    import struct

    sizes = {"FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "DoubleStorage": 8, "LongStorage": 8,
             "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1}
    types = {}

    class Inert(pickle.Unpickler):   # nothing torch's is called: storages are names, tensors are tuples
        def find_class(self, module, name):
            if module == "torch":
                return name
            if module == "torch._utils":
                return lambda *args: (name, args)
            assert (module, name) == ("collections", "OrderedDict"), (module, name)
            return super().find_class(module, name)

        def persistent_load(self, pid):
            kind, storage_type, key, location, numel, view = pid
            assert kind == "storage" and view is None and types.get(key, (storage_type, numel)) == (storage_type, numel)
            types[key] = (storage_type, numel)
            return pid

    with open(path, "rb") as f:
        assert Inert(f).load() == 0x1950a86a20f9469cfc6c
        assert Inert(f).load() == 1001
        assert Inert(f).load()["little_endian"] is True
        Inert(f).load()
        keys = Inert(f).load()
        assert keys == sorted(types), (keys, sorted(types))
        start = f.tell()
        for key in keys:
            storage_type, numel = types[key]
            assert struct.unpack("<q", f.read(8))[0] == numel
            assert len(f.read(numel * sizes[storage_type])) == numel * sizes[storage_type]
        assert f.read() == b"", "bytes after the last storage"
        return len(keys), start


def main():
    force = "--force" in sys.argv[1:]
    sd = make_fixtures.state_dict()
    with open(os.path.join(OUT, "..", "tensorfile", "expected.json")) as f:
        assert json.load(f) == make_fixtures.expected_of(sd), "expected.json is out of date: run make_fixtures.py"

    for name, protocol in (("p2.bin", 2), ("p4.bin", 4)):
        path = os.path.join(OUT, name)
        if force or not os.path.exists(path):
            torch.save(sd, path, pickle_protocol=protocol, _use_new_zipfile_serialization=False)
        make_fixtures.check_same(sd, torch.load(path))
        n, at = layout(path)
        print("%s: %d bytes, %d storages from byte %d" % (name, os.path.getsize(path), n, at))


if __name__ == "__main__":
    main()
