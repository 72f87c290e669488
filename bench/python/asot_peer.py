"""The PyTorch peer of `clot-bench solver`: the ASOT solver of SPEC section 3 in PyTorch float32,
with conv1d for the temporal GW term (as the reference implementation does it).

Usage: python3 asot_peer.py <cases.json> <threads>
cases.json: [{"name", "path" (N x K float32 .npy cost), "eps", "alpha", "radius", "lambda_actions",
              "iters", "check" (optional reference plan .npy)}].

It prints one JSON line {"torch", "threads"}, then answers requests on standard input, one per
line, so that the benchmark can interleave its own runs with these (the two sides then share the
machine's slow and fast moments):
  "run <i>"   solve case i once (a warm-up run first, the first time, for cases of more than one
              iteration) and print {"seconds": ...}
  "check <i>" print {"max_abs_vs_reference": ...} for the last plan of case i
"""
import json
import sys
import time

import numpy as np
import torch


def asot(cost, eps, alpha, radius, lambda_actions, n_iters):
    B, N, K = cost.shape
    mask = torch.ones(B, N, dtype=torch.bool)
    nnz = mask.sum(1).to(cost.dtype)
    T = (mask[..., None].to(cost.dtype) / nnz[:, None, None] / K).expand(B, N, K).clone()
    a = int(N * radius)
    kernel = torch.ones(1, 1, 2 * a + 1, dtype=cost.dtype)
    step = None
    for it in range(n_iters):
        U = T.sum(2, keepdim=True) - T
        if a > 0 and alpha > 0:
            Ut = U.transpose(1, 2).reshape(B * K, 1, N)
            box = torch.nn.functional.conv1d(Ut, kernel, padding=a).reshape(B, K, N).transpose(1, 2)
            GW = (box - U) / radius
            GW = GW * mask[..., None]
        else:
            GW = torch.zeros_like(T)
        G = (alpha * GW + (1 - alpha) * cost + eps * torch.log(T + 1e-12)
             + lambda_actions * (torch.log(T.sum(1, keepdim=True) * K + 1e-12) + 1))
        if it == 0:
            step = 4.0 / G.max()
        T = T * torch.exp(-step * G)
        T = torch.nan_to_num(T / T.sum(2, keepdim=True)) / nnz[:, None, None]
    return T * nnz[:, None, None]


def main():
    cases = json.load(open(sys.argv[1]))
    torch.set_num_threads(int(sys.argv[2]))
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    loaded, plans = {}, {}
    with torch.no_grad():
        for line in sys.stdin:
            verb, i = line.split()
            c = cases[int(i)]
            args = (c["eps"], c["alpha"], c["radius"], c["lambda_actions"], c["iters"])
            if verb == "run":
                if i not in loaded:
                    loaded[i] = torch.from_numpy(np.load(c["path"]).astype(np.float32))[None]
                    # the N >= 100 000 cases run 1 iteration (minutes each with conv1d): no warm-up
                    if c["iters"] > 1:
                        asot(loaded[i], *args)
                t0 = time.perf_counter()
                plans[i] = asot(loaded[i], *args)
                print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)
            elif verb == "check":
                ref = np.load(c["check"])
                diff = float(np.abs(plans[i][0].numpy() - ref).max())
                print(json.dumps({"max_abs_vs_reference": diff}), flush=True)


main()
