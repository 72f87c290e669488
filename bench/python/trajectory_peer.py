"""The PyTorch peer of a recorded clot run: replays `clot train --record-draws <file>` with the
draws clot made (initial parameters including the k-means A, each epoch's video order, each
batch's sampled frames, SWD directions, dropout masks) instead of its own RNG, and writes what
it computed, under the same names, for `clot-bench trajectory` to compare step by step.

Usage: python3 trajectory_peer.py <draws.safetensors> <dataset root> <out.safetensors> [threads]

The dataset root is the standard layout (`features/<activity>/<video>.txt|.npy`, or the features
directly in `features/`); videos are looked up by the names the draw file lists. The model is the
PyTorch peers' (`asot_train_peer.py`, whose sampling, standardisation, temporal prior and solver
it uses, and `clot_train_peer.py`), written here functionally over the
parameters by clot's (PyTorch state-dict) names, so that dropout can take given masks:
`nn.MultiheadAttention` is spelled out (packed in-projection, q scaled by 1/sqrt(head dim),
dropout on the attention weights, output projection) and checked against the module at start-up.
Every setting comes from the configuration in the draw file's metadata. Float32 throughout, as
the reference; only the sinusoidal positions are computed in float64 and rounded (see
`positions`).

Writes: step<s>/loss/<term> (f64), step<s>/param/<name> after each step, step<s>/grad/<name> and
step<s>/fwd/<slot>/<what> for the steps whose detail the draw file has, eval/<i>/pred.
"""
import glob
import json
import math
import os
import sys
import tomllib

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.numpy import save_file

import asot_train_peer as base


def load_draws(path):
    with safe_open(path, "np") as f:
        meta = f.metadata()
        draws = {k: f.get_tensor(k) for k in f.keys()}
    return draws, tomllib.loads(meta["clot.config"]), json.loads(meta["clot.videos"])


def load_features(root, names):
    files = {}
    for ext in ("txt", "npy"):
        for f in glob.glob(os.path.join(root, "features", "**", f"*.{ext}"), recursive=True):
            files[os.path.splitext(os.path.basename(f))[0]] = f
    out = []
    for n in names:
        if n not in files:
            raise SystemExit(f"video {n}: no features/{n}.txt or .npy under {root}")
        f = files[n]
        x = np.load(f) if f.endswith(".npy") else np.loadtxt(f)
        out.append(np.asarray(x, dtype=np.float32))
    return out


def crop(x, idx, valid, std):
    feats = x[idx[:valid]]
    if std:
        feats = base.standardise(feats)
    feats = np.concatenate([feats, np.repeat(feats[-1:], len(idx) - valid, 0)])
    return torch.from_numpy(feats), torch.from_numpy(np.arange(len(idx)) < valid)


def swd_cost(f, a, theta, radius):
    """clot_train_peer.swd_cost for one video with given directions, its distances from the
    differences: torch.cdist's default for more than 25 rows (‖x‖² + ‖y‖² − 2⟨x, y⟩) cancels
    near-unit rows ~0.01 apart and loses ~1e-4 (1 %) of the SWD term in float32, which alone
    moves OT1's plan by ~5e-4; the differences are within 5e-8 of float64, as clot computes it."""
    cd = lambda x, y: torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")  # noqa: E731
    theta = theta / theta.norm(dim=-1, keepdim=True)
    xs = F.normalize(cd(f, radius * theta), dim=-1)
    ys = F.normalize(cd(a, radius * theta), dim=-1)
    return cd(xs.sort(dim=0)[0], ys.sort(dim=0)[0])


def positions(n, d):
    """clot_train_peer.positions in float64, rounded to float32: the float32 product n·freq
    the module computes is off by up to n·2^-24 in the argument, which alone moves S by ~1e-5."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe.float()


def mha(p, pre, q, k, v, heads, key_pad=None, drop=None):
    """nn.MultiheadAttention(batch_first) of one video: q Lq×d, k/v Lk×d; drop: h×Lq×Lk
    multipliers on the attention weights."""
    d = q.shape[-1]
    hd = d // heads
    w, b = p[f"{pre}.in_proj_weight"], p[f"{pre}.in_proj_bias"]
    qq = F.linear(q, w[:d], b[:d]).reshape(-1, heads, hd).transpose(0, 1) * (1.0 / math.sqrt(hd))
    kk = F.linear(k, w[d:2 * d], b[d:2 * d]).reshape(-1, heads, hd).transpose(0, 1)
    vv = F.linear(v, w[2 * d:], b[2 * d:]).reshape(-1, heads, hd).transpose(0, 1)
    att = qq @ kk.transpose(1, 2)
    if key_pad is not None:
        att = att.masked_fill(key_pad[None, None, :], float("-inf"))
    att = att.softmax(-1)
    if drop is not None:
        att = att * drop
    out = (att @ vv).transpose(0, 1).reshape(-1, d)
    return F.linear(out, p[f"{pre}.out_proj.weight"], p[f"{pre}.out_proj.bias"])


def decoder(p, cfg, f, mask, drops):
    """The parallel decoder of one video (clot_train_peer.Decoder/Layer, any number of layers)."""
    d, heads = f.shape[-1], cfg["heads"]
    mem_k = f + positions(f.shape[0], d)
    mem_v = mem_k if cfg["pos_values"] else f
    qpos = p["query_pos"]
    tgt = p["query_embed"]
    pad = ~mask
    ln = lambda x, n: F.layer_norm(x, (d,), p[f"{n}.weight"], p[f"{n}.bias"], 1e-5)  # noqa: E731
    for lay in range(cfg["decoder_layers"]):
        pre = f"decoder.layers.{lay}"
        dr = (lambda s: drops[f"{lay}/{s}"]) if drops else (lambda s: None)  # noqa: E731
        mul = lambda x, s: x if dr(s) is None else x * dr(s)  # noqa: E731
        q = tgt + qpos
        sa = mha(p, f"{pre}.self_attn", q, q, q if cfg["pos_values"] else tgt, heads,
                 drop=dr("self_attn"))
        tgt = ln(tgt + mul(sa, "res1"), f"{pre}.norm1")
        ca = mha(p, f"{pre}.multihead_attn", tgt + qpos, mem_k, mem_v, heads, key_pad=pad,
                 drop=dr("cross_attn"))
        tgt = ln(tgt + mul(ca, "res2"), f"{pre}.norm2")
        h = mul(F.relu(F.linear(tgt, p[f"{pre}.linear1.weight"], p[f"{pre}.linear1.bias"])), "ffn")
        ff = F.linear(h, p[f"{pre}.linear2.weight"], p[f"{pre}.linear2.bias"])
        tgt = ln(tgt + mul(ff, "res3"), f"{pre}.norm3")
    return F.normalize(ln(tgt, "decoder.norm"), dim=-1)


def check_mha(heads):
    """The spelled-out attention equals nn.MultiheadAttention (no dropout)."""
    torch.manual_seed(0)
    m = torch.nn.MultiheadAttention(8, heads, batch_first=True)
    p = {f"x.{k}": v for k, v in m.state_dict().items()}
    q, k = torch.randn(5, 8), torch.randn(9, 8)
    pad = torch.zeros(9, dtype=torch.bool)
    pad[7:] = True
    ref = m(q[None], k[None], k[None], key_padding_mask=pad[None])[0][0]
    err = (mha(p, "x", q, k, k, heads, key_pad=pad) - ref).abs().max().item()
    if err > 1e-6:
        raise SystemExit(f"spelled-out attention differs from nn.MultiheadAttention by {err}")


class Model:
    def __init__(self, cfg, init):
        self.cfg = cfg
        self.p = {k[len("init/"):]: torch.tensor(v, requires_grad=True)
                  for k, v in init.items()}
        self.k = cfg["actions"]
        self.has = lambda s: cfg["mode"] == "clot" and s not in cfg["without"]
        if cfg.get("swd_variant", "released") != "released":
            raise SystemExit("the peer implements swd_variant = released only")

    def encode(self, x):
        n_lin = len(self.cfg["mlp"]) - 1
        h = x
        for i in range(n_lin):
            h = F.linear(h, self.p[f"mlp.{2 * i}.weight"], self.p[f"mlp.{2 * i}.bias"])
            if i + 1 < n_lin:
                h = F.relu(h)
        return F.normalize(h, dim=-1)

    def dispatch(self, e, a):  # clot_train_peer.Dispatch
        al, be = self.p["dispatch.sim_alpha"], self.p["dispatch.sim_beta"]
        s = torch.sigmoid(be + al * torch.einsum("kd,bnd->bkn", a, e))
        m = torch.zeros_like(s).scatter_(1, s.argmax(1, keepdim=True), 1.0)
        c = (torch.einsum("bkn,bnd->bkd", s * m, e) + a[None]) / (m.sum(-1, keepdim=True) + 1)
        return e + torch.einsum("bkn,bkd->bnd", s, c)

    def forward(self, x, mask, thetas, drops, train):
        """Returns (loss terms, outputs per slot, final plan)."""
        cfg, K, a = self.cfg, self.k, self.p["clusters"]
        ot = dict(eps=cfg["eps_train" if train else "eps_eval"],
                  alpha=cfg["alpha_train" if train else "alpha_eval"],
                  lam=cfg["lambda_actions_train" if train else "lambda_actions_eval"],
                  radius=cfg["radius"], iters=cfg["solver_iters"])
        rho, tau = cfg["rho"], cfg["temperature"]
        B, N = x.shape[:2]
        f = self.encode(x)
        if self.has("dispatch"):
            f = F.normalize(self.dispatch(f, a), dim=-1)
        out = {"frames": f}
        with torch.no_grad():
            c1 = 1 - f @ a.T + base.temporal_prior(N, K, rho)
            if self.has("swd"):
                c1 = c1 + cfg["swd_weight"] * torch.stack(
                    [swd_cost(f[b], a, thetas[b], cfg["swd_radius"]) for b in range(B)])
            t = base.asot(c1, mask, **ot)
        out["plan"] = t

        def ce(t, z, m):
            return -((t * torch.log(F.softmax(z / tau, dim=-1) + 1e-11)).sum(2) * m).mean()

        terms = {"loss": ce(t, f @ a.T, mask)}
        final = t
        keys = a[None].expand(B, -1, -1)
        if self.has("decoder"):
            s = torch.stack([decoder(self.p, cfg, f[b], mask[b], drops[b] if drops else None)
                             for b in range(B)])
            out["segments"] = s
            kq = s.shape[1]
            with torch.no_grad():
                ts = base.asot(1 - s @ a.T + base.temporal_prior(kq, K, rho),
                          torch.ones(B, kq, dtype=torch.bool), **ot)
            out["segment_plan"] = ts
            terms["loss-segments"] = ce(ts, s @ a.T, torch.ones(B, kq))
            keys = s
        if self.has("refine"):
            d = f.shape[-1]
            w = F.softmax(f @ keys.transpose(1, 2) / (d ** 0.5) / cfg["tau_ca"], dim=-1)
            fr = F.normalize(f + w @ keys, dim=-1)
            out["refined"] = fr
            with torch.no_grad():
                tr = base.asot(1 - fr @ a.T + base.temporal_prior(N, K, rho), mask, **ot)
            out["refined_plan"] = tr
            terms["loss-refined"] = ce(tr, fr @ a.T, mask)
            final = tr
        return terms, out, final


def main():
    draws_path, root, out_path = sys.argv[1:4]
    torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    draws, cfg, names = load_draws(draws_path)
    cfg.setdefault("without", [])
    check_mha(cfg["heads"])
    feats = load_features(root, names)
    model = Model(cfg, {k: v for k, v in draws.items() if k.startswith("init/")})
    opt = torch.optim.Adam(list(model.p.values()), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    res = {}
    step = 0
    while f"step{step + 1}/videos" in draws:
        step += 1
        sc = f"step{step}"
        vids, valid = draws[f"{sc}/videos"], draws[f"{sc}/valid"]
        crops = [crop(feats[v], draws[f"{sc}/frames/{slot}"], int(valid[slot]),
                      cfg["standardise"]) for slot, v in enumerate(vids)]
        x, mask = torch.stack([c[0] for c in crops]), torch.stack([c[1] for c in crops])
        thetas = [torch.from_numpy(draws[f"{sc}/swd/{b}"]) for b in range(len(vids))
                  if f"{sc}/swd/{b}" in draws]
        drops = None
        if f"{sc}/dropout/0/0/res1" in draws:
            drops = [{k[len(f"{sc}/dropout/{b}/"):]: torch.from_numpy(v) for k, v in draws.items()
                      if k.startswith(f"{sc}/dropout/{b}/")} for b in range(len(vids))]
        with torch.no_grad():
            model.p["clusters"].data = F.normalize(model.p["clusters"].data, dim=-1)
        terms, out, _ = model.forward(x, mask, thetas, drops, True)
        loss = sum(terms.values())
        opt.zero_grad()
        loss.backward()
        detail = f"{sc}/grad/clusters" in draws
        if detail:
            for n, t in model.p.items():
                res[f"{sc}/grad/{n}"] = t.grad.detach().numpy().copy()
            for what, v in out.items():
                for b in range(len(vids)):
                    res[f"{sc}/fwd/{b}/{what}"] = v[b].detach().numpy().copy()
        opt.step()
        res[f"{sc}/loss/total"] = np.array([loss.item()], dtype=np.float64)
        for n, v in terms.items():
            res[f"{sc}/loss/{n}"] = np.array([v.item()], dtype=np.float64)
        for n, t in model.p.items():
            res[f"{sc}/param/{n}"] = t.detach().numpy().copy()
    for i, xv in enumerate(feats):
        if f"eval/{i}/pred" not in draws:
            continue
        idx = np.arange(len(xv))
        x, mask = crop(xv, idx, len(xv), cfg["standardise"])
        theta = [torch.from_numpy(draws[f"eval/{i}/swd/0"])] if f"eval/{i}/swd/0" in draws else []
        with torch.no_grad():  # A is re-normalised before training steps only, as the reference
            _, _, final = model.forward(x[None], mask[None], theta, None, False)
        res[f"eval/{i}/pred"] = final[0].argmax(1).numpy().astype(np.int64)
    save_file(res, out_path, metadata={"torch": torch.__version__, "steps": str(step)})
    print(json.dumps({"steps": step, "torch": torch.__version__, "out": out_path}))


if __name__ == "__main__":
    main()
