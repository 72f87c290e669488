"""The PyTorch peer of `clot-bench train --mode clot`: CLOT training (SPEC sections 1-4) written
from the SPEC in PyTorch: the ASOT peer's MLP, solver, sampling and k-means, plus feature
dispatching, the SWD cost (`released`), the parallel decoder (nn.MultiheadAttention, post-norm,
positions on values, dropout 0.1), OT2, cross-attention refinement and OT3, with the three
cross-entropies and the prediction from T_R.

Usage: python3 clot_train_peer.py <Breakfast root> <activity> <K> <seed> <threads> <val_every> [predictions.json]
Prints one JSON object like the ASOT peer.
"""
import time

T_START = time.perf_counter()

import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import asot_train_peer as base  # noqa: E402

T_IMPORTED = time.perf_counter()
D, HEADS, TAU_CA, P_SWD, R_SWD = 40, 4, 0.1, 150, 2.0


class Dispatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1))
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, e, a):  # e: B x N x d, a: K x d
        s = torch.sigmoid(self.beta + self.alpha * torch.einsum("kd,bnd->bkn", a, e))
        m = torch.zeros_like(s).scatter_(1, s.argmax(1, keepdim=True), 1.0)
        c = (torch.einsum("bkn,bnd->bkd", s * m, e) + a[None]) / (m.sum(-1, keepdim=True) + 1)
        return e + torch.einsum("bkn,bkd->bnd", s, c)


def swd_cost(f, a):  # f: B x N x d, a: K x d -> B x N x K
    theta = torch.randn(P_SWD, f.shape[-1])
    theta = theta / theta.norm(dim=-1, keepdim=True)
    xs = F.normalize(torch.cdist(f, R_SWD * theta[None].expand(f.shape[0], -1, -1)), dim=-1)
    ys = F.normalize(torch.cdist(a[None], R_SWD * theta[None]), dim=-1)
    return torch.cdist(xs.sort(dim=1)[0], ys.sort(dim=1)[0].expand(f.shape[0], -1, -1))


def positions(n, d):
    pos = torch.arange(n)[:, None].float()
    div = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(D, HEADS, dropout=0.1, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(D, HEADS, dropout=0.1, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(D), nn.LayerNorm(D), nn.LayerNorm(D)
        self.drop, self.d1, self.d2, self.d3 = (nn.Dropout(0.1) for _ in range(4))

    def forward(self, tgt, mem, qpos, pad):
        q = tgt + qpos
        tgt = self.norm1(tgt + self.d1(self.self_attn(q, q, q)[0]))
        tgt = self.norm2(tgt + self.d2(self.multihead_attn(tgt + qpos, mem, mem, key_padding_mask=pad)[0]))
        return self.norm3(tgt + self.d3(self.linear2(self.drop(F.relu(self.linear1(tgt))))))


class Decoder(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.layer = Layer()
        self.norm = nn.LayerNorm(D)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.query_embed = nn.Parameter(torch.randn(k, D) * 0.02)
        self.query_pos = nn.Parameter(torch.randn(k, D))

    def forward(self, f, mask):
        B, N, _ = f.shape
        mem = f + positions(N, D)[None]
        tgt = self.query_embed[None].expand(B, -1, -1)
        out = self.layer(tgt, mem, self.query_pos[None], ~mask)
        return F.normalize(self.norm(out), dim=-1)


def main():
    root, activity, K, seed, threads, val_every = sys.argv[1:7]
    K, seed, threads, val_every = int(K), int(seed), int(threads), int(val_every)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    videos = base.load(root, activity)
    Din = videos[0][1].shape[1]
    mlp = nn.Sequential(nn.Linear(Din, 128), nn.ReLU(), nn.Linear(128, D))
    clusters = nn.Parameter(torch.zeros(K, D))
    dispatch, decoder = Dispatch(), Decoder(K)

    def forward(x, mask, params, train):
        e = F.normalize(mlp(x), dim=-1)
        a = clusters
        f = F.normalize(dispatch(e, a), dim=-1)
        N = x.shape[1]
        with torch.no_grad():
            c1 = 1 - f @ a.T + base.temporal_prior(N, K) + swd_cost(f, a)
            T = base.asot(c1, mask, **params)
        s = decoder(f, mask)
        with torch.no_grad():
            ts = base.asot(1 - s @ a.T + base.temporal_prior(K, K),
                           torch.ones(s.shape[:2], dtype=torch.bool), **params)
        w = F.softmax(f @ s.transpose(1, 2) / (D ** 0.5) / TAU_CA, dim=-1)
        fr = F.normalize(f + w @ s, dim=-1)
        with torch.no_grad():
            tr = base.asot(1 - fr @ a.T + base.temporal_prior(N, K), mask, **params)
        if not train:
            return tr
        def ce(t, z, m):
            return -((t * torch.log(F.softmax(z / base.TAU, dim=-1) + 1e-11)).sum(2) * m).mean()
        ones = torch.ones(s.shape[:2])
        return ce(T, f @ a.T, mask) + ce(ts, s @ a.T, ones) + ce(tr, fr @ a.T, mask)

    def batches(order, mode):
        for i in range(0, len(order), base.BATCH):
            crops = [base.crop(videos[j][1], mode, rng) for j in order[i:i + base.BATCH]]
            yield torch.stack([c[0] for c in crops]), torch.stack([c[1] for c in crops])

    t_train = time.perf_counter()
    with torch.no_grad():
        feats = [F.normalize(mlp(x), dim=-1).reshape(-1, D) for x, _ in batches(list(range(len(videos))), "train")]
        clusters.data = torch.from_numpy(base.kmeans_pp(torch.cat(feats).numpy(), K, rng)).float()
    params = list(mlp.parameters()) + [clusters] + list(dispatch.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=base.LR, weight_decay=base.WD)

    def predict(x, mask):
        decoder.eval()
        with torch.no_grad():
            out = forward(x[None], mask[None], base.EVAL, False)[0].argmax(1).numpy()
        decoder.train()
        return out

    val_mofs = []
    for epoch in range(base.EPOCHS):
        order = rng.permutation(len(videos)).tolist()
        for x, mask in batches(order, "train"):
            with torch.no_grad():
                clusters.data = F.normalize(clusters.data, dim=-1)
            loss = forward(x, mask, base.TRAIN, True)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if val_every and (epoch + 1) % val_every == 0:
            preds, gts = [], []
            for name, xv, gt in videos:
                x, mask, idx = base.crop(xv, "val", rng)
                preds.append(predict(x, mask)[: len(idx)])
                gts.append(gt[idx])
            val_mofs.append(base.mof(preds, gts))
    train_s = time.perf_counter() - t_train
    preds, gts = [], []
    for name, xv, gt in videos:
        x, mask, _ = base.crop(xv, "full", rng)
        preds.append(predict(x, mask))
        gts.append(gt)
    end = time.perf_counter()
    if len(sys.argv) > 7:  # the final predictions, for scoring with clot's metric code
        base.write_predictions(sys.argv[7], [v[0] for v in videos], preds, gts)
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "wall_s": end - T_START, "import_s": T_IMPORTED - T_START, "train_s": train_s,
        "eval_s": end - t_train - train_s, "mof": float(base.mof(preds, gts)),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "val_mof_last": val_mofs[-1] if val_mofs else None,
    }))


if __name__ == "__main__":
    main()
