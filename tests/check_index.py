#!/usr/bin/env python3
"""check_index.py — Python's faiss opens the index files test_index.c wrote and finds what it found.

usage: check_index.py MANIFEST QUERIES.f32 NQ
MANIFEST lines: index_path nprobe k ntotal d ids_path dist_path (raw int64 [NQ,k], float32 [NQ,k]).
Each index must read with faiss.read_index, have that ntotal and d, and searching the queries must give
the same ids (a different id is allowed only where the expected distances tie within 1e-5) and the same
distances within 1e-5 relative. Exit status 1 on any difference."""
import sys

import faiss
import numpy as np


def check(line, queries):
    path, nprobe, k, ntotal, d, ids_path, dist_path = line.split()
    nprobe, k, ntotal, d = int(nprobe), int(k), int(ntotal), int(d)
    index = faiss.read_index(path)
    errors = []
    if index.ntotal != ntotal or index.d != d:
        errors.append(f"ntotal {index.ntotal} d {index.d}, expected {ntotal} {d}")
    try:
        faiss.extract_index_ivf(index).nprobe = nprobe
    except RuntimeError:
        pass  # not an IVF index
    dist, ids = index.search(queries[:, :d], k)
    want_ids = np.fromfile(ids_path, dtype=np.int64).reshape(-1, k)
    want_dist = np.fromfile(dist_path, dtype=np.float32).reshape(-1, k)
    rel = np.abs(dist - want_dist) / np.maximum(np.abs(want_dist), 1e-30)
    if rel.max() > 1e-5:
        errors.append(f"distance differs by {rel.max():.3g} relative")
    gap = np.empty_like(want_dist)  # distance to the nearest other rank: a tie lets ids swap
    gap[:, :] = np.inf
    gap[:, :-1] = np.minimum(gap[:, :-1], want_dist[:, 1:] - want_dist[:, :-1])
    gap[:, 1:] = np.minimum(gap[:, 1:], want_dist[:, 1:] - want_dist[:, :-1])
    differ = ids != want_ids
    untied = differ & (gap > 1e-5 * np.abs(want_dist))
    if untied.any():
        errors.append(f"{int(untied.sum())} ids differ where distances do not tie")
    status = "FAIL " + "; ".join(errors) if errors else "ok"
    print(f"    python faiss {faiss.__version__}: {path}: {type(index).__name__} ntotal={index.ntotal} "
          f"ids equal {100.0 * (1 - differ.mean()):.2f}%: {status}")
    return not errors


def main():
    manifest, queries_path, nq = sys.argv[1], sys.argv[2], int(sys.argv[3])
    queries = np.fromfile(queries_path, dtype=np.float32).reshape(nq, -1)
    ok = True
    with open(manifest) as f:
        for line in f:
            if line.strip():
                ok &= check(line, queries)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
