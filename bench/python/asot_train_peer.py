"""The PyTorch peer of `clot-bench train`: ASOT training (SPEC sections 1-4) written from the SPEC
in PyTorch, the way the reference implementation does it: nn.Sequential MLP, autograd,
torch.optim.Adam with weight_decay, the ASOT solver with conv1d for the GW term, k-means++
initialisation of the action embeddings, evaluation on full-length videos with Hungarian matching.

Usage: python3 asot_train_peer.py <Breakfast root> <activity> <K> <seed> <threads> <val_every> [predictions.json]
Prints one JSON object: seconds from interpreter start (imports included) to the end, training
seconds, activity-level MoF, peak RSS. The breakfast preset's settings; PEER_EPOCHS (environment)
changes the epoch count.
"""
import time

T_START = time.perf_counter()

import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

T_IMPORTED = time.perf_counter()

# breakfast preset (SPEC section 1)
S, BATCH, EPOCHS, LR, WD, TAU = 256, 2, int(os.environ.get("PEER_EPOCHS", 15)), 1e-3, 1e-4, 0.1
RHO, RADIUS, ITERS = 0.2, 0.04, 25
TRAIN = dict(eps=0.07, alpha=0.4, lam=0.1)
EVAL = dict(eps=0.04, alpha=0.7, lam=0.01)


def load(root, activity):
    mapping = {}
    for line in open(os.path.join(root, "mapping", "mapping.txt")):
        i, name = line.split()
        mapping[name] = int(i)
    videos = []
    files = glob.glob(os.path.join(root, "features", activity, "*.txt"))
    files += glob.glob(os.path.join(root, "features", activity, "*.npy"))
    for f in sorted(files, key=lambda f: os.path.splitext(os.path.basename(f))[0]):
        name = os.path.splitext(os.path.basename(f))[0]
        x = (np.load(f) if f.endswith(".npy") else np.loadtxt(f)).astype(np.float32)
        gt = [mapping[l.strip()] for l in open(os.path.join(root, "groundTruth", name)) if l.strip()]
        videos.append((name, x, np.array(gt[: len(x)])))
    return videos


def standardise(x):
    x = x.copy()
    nz = x.sum(1) != 0
    mean, std = x[nz].mean(0), x[nz].std(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        x[nz] = (x[nz] - mean) / std
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    return (x / np.sqrt(x.shape[1])).astype(np.float32)


def crop(x, mode, rng):
    n = len(x)
    if mode == "full":
        idx = np.arange(n)
    elif n < S:
        idx = np.concatenate([np.arange(n), np.full(S - n, n - 1)])
    elif mode == "train":
        b = np.floor(np.linspace(0, n - 1, S + 1)).astype(int)
        idx = np.array([rng.integers(lo, hi) if hi > lo else lo for lo, hi in zip(b[:-1], b[1:])])
    else:
        idx = np.floor(np.linspace(0, n - 1, S)).astype(int)
    valid = min(n, len(idx)) if mode != "full" else n
    feats = standardise(x[idx[:valid]])
    feats = np.concatenate([feats, np.repeat(feats[-1:], len(idx) - valid, 0)])
    mask = np.arange(len(idx)) < valid
    return torch.from_numpy(feats), torch.from_numpy(mask), idx[:valid]


def temporal_prior(n, k, rho=RHO):
    i = torch.arange(n, dtype=torch.float32)[:, None] / n
    j = torch.arange(k, dtype=torch.float32)[None, :] / k
    return rho * (i - j).abs()


def asot(cost, mask, eps, alpha, lam, radius=RADIUS, iters=ITERS):
    B, N, K = cost.shape
    nnz = mask.sum(1).to(cost.dtype)
    T = (mask[..., None].to(cost.dtype) / nnz[:, None, None] / K).expand(B, N, K).clone()
    a = int(N * radius)
    kernel = torch.ones(1, 1, 2 * a + 1, dtype=cost.dtype)
    for it in range(iters):
        U = T.sum(2, keepdim=True) - T
        if a > 0:
            Ut = U.transpose(1, 2).reshape(B * K, 1, N)
            box = F.conv1d(Ut, kernel, padding=a).reshape(B, K, N).transpose(1, 2)
            GW = (box - U) / radius * mask[..., None]
        else:
            GW = torch.zeros_like(T)
        G = (alpha * GW + (1 - alpha) * cost + eps * torch.log(T + 1e-12)
             + lam * (torch.log(T.sum(1, keepdim=True) * K + 1e-12) + 1))
        if it == 0:
            step = 4.0 / G.max()
        T = T * torch.exp(-step * G)
        T = torch.nan_to_num(T / T.sum(2, keepdim=True)) / nnz[:, None, None]
    return T * nnz[:, None, None]


def kmeans_pp(x, k, rng, iters=300):
    c = [x[rng.integers(len(x))]]
    d2 = ((x - c[0]) ** 2).sum(1)
    for _ in range(1, k):
        c.append(x[rng.choice(len(x), p=d2 / d2.sum())])
        d2 = np.minimum(d2, ((x - c[-1]) ** 2).sum(1))
    c = np.stack(c)
    assign = None
    for _ in range(iters):
        new = ((x[:, None] - c[None]) ** 2).sum(2).argmin(1)
        if assign is not None and (new == assign).all():
            break
        assign = new
        for j in range(k):
            if (assign == j).any():
                c[j] = x[assign == j].mean(0)
    return c


def write_predictions(path, names, preds, gts):
    """Writes {"videos": [...], "pred": [[...]], "gt": [[...]]} (full-length, dataset order)."""
    with open(path, "w") as f:
        json.dump({"videos": names, "pred": [np.asarray(p).tolist() for p in preds],
                   "gt": [np.asarray(g).tolist() for g in gts]}, f)


def mof(preds, gts):
    p, g = np.concatenate(preds), np.concatenate(gts)
    up, ug = np.unique(p), np.unique(g)
    m = np.array([[np.sum((p == a) & (g == b)) for b in ug] for a in up])
    r, c = linear_sum_assignment(-m)
    return m[r, c].sum() / len(g)


def main():
    root, activity, K, seed, threads, val_every = sys.argv[1:7]
    K, seed, threads, val_every = int(K), int(seed), int(threads), int(val_every)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    videos = load(root, activity)
    D = videos[0][1].shape[1]
    mlp = torch.nn.Sequential(torch.nn.Linear(D, 128), torch.nn.ReLU(), torch.nn.Linear(128, 40))
    clusters = torch.nn.Parameter(torch.zeros(K, 40))

    def embed(x):
        return F.normalize(mlp(x), dim=-1)

    def batches(order, mode):
        for i in range(0, len(order), BATCH):
            crops = [crop(videos[j][1], mode, rng) for j in order[i:i + BATCH]]
            yield torch.stack([c[0] for c in crops]), torch.stack([c[1] for c in crops])

    t_train = time.perf_counter()
    with torch.no_grad():
        feats = [embed(x).reshape(-1, 40) for x, _ in batches(list(range(len(videos))), "train")]
        clusters.data = torch.from_numpy(kmeans_pp(torch.cat(feats).numpy(), K, rng)).float()
    opt = torch.optim.Adam(list(mlp.parameters()) + [clusters], lr=LR, weight_decay=WD)

    def predict(x, mask, p):
        with torch.no_grad():
            e = embed(x[None])
            cost = 1 - e @ clusters.T + temporal_prior(x.shape[0], K)
            return asot(cost, mask[None], **p)[0].argmax(1).numpy()

    val_mofs = []
    for epoch in range(EPOCHS):
        order = rng.permutation(len(videos)).tolist()
        for x, mask in batches(order, "train"):
            with torch.no_grad():
                clusters.data = F.normalize(clusters.data, dim=-1)
            e = embed(x)
            logits = e @ clusters.T
            with torch.no_grad():
                T = asot(1 - logits + temporal_prior(x.shape[1], K), mask, **TRAIN)
            p = F.softmax(logits / TAU, dim=-1)
            loss = -((T * torch.log(p + 1e-11)).sum(2) * mask).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if val_every and (epoch + 1) % val_every == 0:
            preds, gts = [], []
            for name, xv, gt in videos:
                x, mask, idx = crop(xv, "val", rng)
                preds.append(predict(x, mask, EVAL)[: len(idx)])
                gts.append(gt[idx])
            val_mofs.append(mof(preds, gts))
    train_s = time.perf_counter() - t_train
    preds, gts = [], []
    for name, xv, gt in videos:
        x, mask, _ = crop(xv, "full", rng)
        preds.append(predict(x, mask, EVAL))
        gts.append(gt)
    end = time.perf_counter()
    if len(sys.argv) > 7:  # the final predictions, for scoring with clot's metric code
        write_predictions(sys.argv[7], [v[0] for v in videos], preds, gts)
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "wall_s": end - T_START, "import_s": T_IMPORTED - T_START, "train_s": train_s,
        "eval_s": end - t_train - train_s, "mof": float(mof(preds, gts)),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "val_mof_last": val_mofs[-1] if val_mofs else None,
    }))


if __name__ == "__main__":
    main()
