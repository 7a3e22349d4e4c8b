#!/usr/bin/python3
"""key_spectrum.py DSTORE [OUT.inc] — the principal-component variances of a datastore's keys (eigenvalues of
their covariance, descending, float64), written as a C initializer for src/dstore/synth_spectrum.inc: the
spectrum the synthetic keys of src/dstore/synth.c follow. A development tool (Python is never used at run time).

    bench/key_spectrum.py out/quickstart/dstore src/dstore/synth_spectrum.inc
"""
import sys

import numpy as np


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    keys = np.load(sys.argv[1] + "/keys.npy", mmap_mode="r")
    n, d = keys.shape
    mean = np.zeros(d)
    cov = np.zeros((d, d))
    for i in range(0, n, 65536):
        block = np.asarray(keys[i:i + 65536], dtype=np.float64)
        mean += block.sum(axis=0)
        cov += block.T @ block
    mean /= n
    cov = cov / n - np.outer(mean, mean)
    eig = np.sort(np.linalg.eigvalsh(cov))[::-1]
    eig = np.maximum(eig, eig[0] * 1e-9)
    lines = [f"/* principal-component variances of {sys.argv[1]}/keys.npy ({n} keys of {d} dimensions), descending;",
             "   written by bench/key_spectrum.py */"]
    lines += [f"    {v:.9e}," for v in eig]
    text = "\n".join(lines) + "\n"
    if len(sys.argv) == 3:
        with open(sys.argv[2], "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    top = eig / eig.sum()
    print(f"{n} keys, D={d}: top-1 {top[0]:.3f}, top-10 {top[:10].sum():.3f}, top-64 {top[:64].sum():.3f} of the variance",
          file=sys.stderr)


if __name__ == "__main__":
    main()
