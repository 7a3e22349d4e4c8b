#!/usr/bin/env python3
"""check_index.py — Python's faiss opens the index files test_index.c wrote and finds what it found.

usage: check_index.py MANIFEST QUERIES.f32 NQ [BASE.f32]
MANIFEST lines: index_path nprobe k ntotal d ids_path dist_path (raw int64 [NQ,k], float32 [NQ,k]).
Each index must read with faiss.read_index, have that ntotal and d, and searching the queries must give
the same ids (a different id is allowed only where the expected distances tie within 1e-5) and the same
distances within 1e-5 relative. With BASE (the rows added, row i with id i), the entries of an IVF-PQ index
(which our add finds and encodes on our own GEMM) must be where Faiss puts them: each row in the list of its
nearest centroid, with the PQ code Faiss computes for its residual, but where two choices are within 1e-5
(relative) of each other. Exit status 1 on any difference."""
import sys

import faiss
import numpy as np


def near_tie(a, b):
    return np.abs(a - b) <= 1e-5 * np.maximum(np.abs(a), np.abs(b)) + 1e-12


def check_entries(index, base):
    """Faiss' own list and PQ code for every entry of an IVF-PQ index; a list of errors."""
    ivf = faiss.downcast_index(index)  # the IVF-PQ itself: no transform in front (our add encodes those)
    if type(ivf) is not faiss.IndexIVFPQ or ivf.pq.nbits != 8:
        return [], None
    inv, M, cs = ivf.invlists, ivf.pq.M, ivf.code_size
    ids, lists, codes = [], [], []
    for l in range(ivf.nlist):
        n = inv.list_size(l)
        if n:
            ids.append(faiss.rev_swig_ptr(inv.get_ids(l), n).copy())
            codes.append(faiss.rev_swig_ptr(inv.get_codes(l), n * cs).copy().reshape(n, cs))
            lists.append(np.full(n, l))
    ids, lists, codes = np.concatenate(ids), np.concatenate(lists), np.concatenate(codes)
    x = base[ids]
    errors = []
    c = faiss.rev_swig_ptr(faiss.downcast_index(ivf.quantizer).get_xb(), ivf.nlist * ivf.d).reshape(ivf.nlist, -1).copy()
    cdist, want_list = ivf.quantizer.search(x, 1)
    moved = want_list[:, 0] != lists
    if moved.any():  # in another list: only where that centroid is as near
        ours = ((x[moved] - c[lists[moved]]).astype(np.float64) ** 2).sum(1)
        if not near_tie(ours, cdist[moved, 0]).all():
            errors.append(f"{int((~near_tie(ours, cdist[moved, 0])).sum())} rows not in their nearest list")
    res = (x - c[lists]).astype(np.float32) if ivf.by_residual else x
    want = ivf.pq.compute_codes(np.ascontiguousarray(res))
    differ = want != codes
    if differ.any():  # another code byte: only where that sub-centroid is as near
        cent = faiss.vector_to_array(ivf.pq.centroids).reshape(M, ivf.pq.ksub, ivf.pq.dsub)
        rows, subs = np.nonzero(differ)
        sub = res.reshape(len(res), M, -1)[rows, subs].astype(np.float64)
        d_ours = ((sub - cent[subs, codes[rows, subs]]) ** 2).sum(1)
        d_want = ((sub - cent[subs, want[rows, subs]]) ** 2).sum(1)
        if not near_tie(d_ours, d_want).all():
            errors.append(f"{int((~near_tie(d_ours, d_want)).sum())} PQ code bytes not the nearest sub-centroid")
    return errors, 100.0 * (1 - differ.mean())


def check(line, queries, base):
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
    codes = ""
    if base is not None:
        entry_errors, same = check_entries(index, base)
        errors += entry_errors
        codes = f", PQ codes equal {same:.3f}%" if same is not None else ""
    status = "FAIL " + "; ".join(errors) if errors else "ok"
    print(f"    python faiss {faiss.__version__}: {path}: {type(index).__name__} ntotal={index.ntotal} "
          f"ids equal {100.0 * (1 - differ.mean()):.2f}%{codes}: {status}")
    return not errors


def main():
    manifest, queries_path, nq = sys.argv[1], sys.argv[2], int(sys.argv[3])
    queries = np.fromfile(queries_path, dtype=np.float32).reshape(nq, -1)
    base = np.fromfile(sys.argv[4], dtype=np.float32).reshape(-1, queries.shape[1]) if len(sys.argv) > 4 else None
    ok = True
    with open(manifest) as f:
        for line in f:
            if line.strip():
                ok &= check(line, queries, base)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
