"""The PyTorch peer of `clot-bench solver`: the ASOT solver of SPEC section 3 in PyTorch float32,
with conv1d for the temporal GW term (as the reference implementation does it).

Usage: python3 asot_peer.py <cases.json> <threads> <repeats>
cases.json: [{"name", "path" (N x K float32 .npy cost), "eps", "alpha", "radius", "lambda_actions",
              "iters"}]. Prints one JSON object: per case the median seconds and the plan's checksum,
and with "check" (a reference plan .npy) the max abs difference to it.
"""
import json
import statistics
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
    repeats = int(sys.argv[3])
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cases": {}}
    with torch.no_grad():
        for c in cases:
            cost = torch.from_numpy(np.load(c["path"]).astype(np.float32))[None]
            args = (c["eps"], c["alpha"], c["radius"], c["lambda_actions"], c["iters"])
            # the N >= 100 000 cases run 1 iteration (minutes each with conv1d): no warm-up, once
            reps = repeats if c["iters"] > 1 else 1
            if reps > 1:
                asot(cost, *args)  # warm-up
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                plan = asot(cost, *args)
                times.append(time.perf_counter() - t0)
            res = {"seconds": statistics.median(times), "iters": c["iters"]}
            if c.get("check"):
                ref = np.load(c["check"])
                res["max_abs_vs_reference"] = float(np.abs(plan[0].numpy() - ref).max())
            out["cases"][c["name"]] = res
    print(json.dumps(out))


main()
