#!/usr/bin/python3
"""bench_torch.py — the PyTorch side of the forward-pass benchmark (bench_forward.c is the C side).

    /usr/bin/python3 bench/bench_torch.py MODEL_DIR [--threads 2] [--repeats 3] [--tokens 1024] [--dump OUT.npy]

Reads MODEL_DIR/config.json and MODEL_DIR/model.safetensors (F32) with numpy alone (8-byte little-endian
header length, JSON header, raw data; no safetensors package), runs a GPT-2 forward written in plain torch
(Hugging Face GPT2LMHeadModel semantics, eager attention as HF's GPT2Attention computes it: full T x T scores per
head, causal mask, softmax, gelu_new) over one window of `tokens` ids, and prints tokens/s for hidden states only
(the output of ln_f) and with logits for every position (the tied lm_head). The window's ids are
(t * 7919 + 375) % vocab, the same as bench_forward.c. --dump writes the final hidden states [T, C] (float32
.npy) so bench_forward can check that both compute the same thing.

Run it with Debian's /usr/bin/python3 (python3-torch 1.13); HF transformers is not needed.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{path}: tensor {name} is {info['dtype']}; this benchmark reads F32 only")
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"])
        out[name[len("transformer."):] if name.startswith("transformer.") else name] = torch.from_numpy(arr.copy())
    return out


class Gpt2:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        self.L, self.C, self.NH = cfg["n_layer"], cfg["n_embd"], cfg["n_head"]
        self.eps = cfg.get("layer_norm_epsilon", 1e-5)
        self.V = cfg["vocab_size"]
        self.w = read_safetensors(os.path.join(model_dir, "model.safetensors"))

    def hidden(self, ids):
        w, C, NH = self.w, self.C, self.NH
        T, HS = ids.shape[0], C // NH
        x = w["wte.weight"][ids] + w["wpe.weight"][:T]
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        masked = torch.tensor(torch.finfo(torch.float32).min)
        for l in range(self.L):
            p = f"h.{l}."
            h = F.layer_norm(x, (C,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], self.eps)
            qkv = torch.addmm(w[p + "attn.c_attn.bias"], h, w[p + "attn.c_attn.weight"])
            q, k, v = qkv.split(C, dim=1)
            q = q.view(T, NH, HS).transpose(0, 1)
            k = k.view(T, NH, HS).transpose(0, 1)
            v = v.view(T, NH, HS).transpose(0, 1)
            s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(HS)
            s = torch.where(mask, s, masked)
            a = torch.matmul(torch.softmax(s, dim=-1), v).transpose(0, 1).reshape(T, C)
            x = x + torch.addmm(w[p + "attn.c_proj.bias"], a, w[p + "attn.c_proj.weight"])
            h = F.layer_norm(x, (C,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], self.eps)
            f = F.gelu(torch.addmm(w[p + "mlp.c_fc.bias"], h, w[p + "mlp.c_fc.weight"]), approximate="tanh")
            x = x + torch.addmm(w[p + "mlp.c_proj.bias"], f, w[p + "mlp.c_proj.weight"])
        return F.layer_norm(x, (C,), w["ln_f.weight"], w["ln_f.bias"], self.eps)

    def logits(self, hidden):
        return torch.matmul(hidden, self.w["wte.weight"].t())


def best_of(fn, repeats):
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--dump", help="write the final hidden states [T, C] here (.npy)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m = Gpt2(args.model_dir)
    T = args.tokens
    ids = torch.tensor([(t * 7919 + 375) % m.V for t in range(T)], dtype=torch.long)
    with torch.inference_mode():
        h = m.hidden(ids)  # warm-up (first touches, allocator)
        if args.dump:
            np.save(args.dump, h.numpy().astype(np.float32))
        t_hidden = best_of(lambda: m.hidden(ids), args.repeats)
        t_logits = best_of(lambda: m.logits(m.hidden(ids)), args.repeats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, window {T}, best of {args.repeats}")
    print(f"torch hidden      {T / t_hidden:9.1f} tokens/s  ({t_hidden * 1e3:8.1f} ms/window)")
    print(f"torch with logits {T / t_logits:9.1f} tokens/s  ({t_logits * 1e3:8.1f} ms/window)")


if __name__ == "__main__":
    main()
