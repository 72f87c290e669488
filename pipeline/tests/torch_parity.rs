//! Parity of CLOT's forward kernels with PyTorch's modules on the same parameters: the decoder
//! against `nn.MultiheadAttention` / `nn.LayerNorm` / `nn.Linear` arranged as the released code
//! (post-norm, positions on values, padded frames masked), dispatching and refinement against the
//! released formulas. Needs python3 with torch; skips without it unless `CLOT_REQUIRE_TORCH=1`.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use clot_datasets::npy::write_npy_f32;
use clot_pipeline::config::TrainConfig;
use clot_pipeline::output::write_checkpoint;
use clot_stages::decode::kernel as dec;
use clot_stages::dispatch::kernel as fd;
use clot_stages::linalg::normalize_rows;
use clot_stages::params::ParamSet;
use clot_stages::refine::kernel as refine;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SCRIPT: &str = r#"
import sys, json
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import load_file
d_, N, K, valid = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
p = load_file(sys.argv[1] + "/params.safetensors")
f = torch.from_numpy(np.load(sys.argv[1] + "/f.npy"))
D, H = d_, 4
def mha():
    return nn.MultiheadAttention(D, H, batch_first=True)
sa, ca = mha(), mha()
l1, l2 = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)
n1, n2, n3, nf = (nn.LayerNorm(D) for _ in range(4))
mods = {"self_attn": sa, "multihead_attn": ca, "linear1": l1, "linear2": l2, "norm1": n1, "norm2": n2, "norm3": n3}
with torch.no_grad():
    for name, m in mods.items():
        sd = {k[len("decoder.layers.0." + name) + 1:]: v for k, v in p.items() if k.startswith("decoder.layers.0." + name + ".")}
        m.load_state_dict(sd)
    nf.load_state_dict({"weight": p["decoder.norm.weight"], "bias": p["decoder.norm.bias"]})
    pos = torch.arange(N)[:, None].float()
    div = torch.exp(torch.arange(0, D, 2).float() * (-np.log(10000.0) / D))
    pe = torch.zeros(N, D); pe[:, 0::2] = torch.sin(pos * div); pe[:, 1::2] = torch.cos(pos * div)
    mem = (f + pe)[None]
    pad = torch.arange(N)[None] >= valid
    tgt, qpos = p["query_embed"][None], p["query_pos"][None]
    q = tgt + qpos
    tgt = n1(tgt + sa(q, q, q)[0])
    tgt = n2(tgt + ca(tgt + qpos, mem, mem, key_padding_mask=pad)[0])
    tgt = n3(tgt + l2(F.relu(l1(tgt))))
    s = F.normalize(nf(tgt), dim=-1)[0]
    a = p["clusters"]
    e = f[None]
    sim = torch.sigmoid(p["dispatch.sim_beta"] + p["dispatch.sim_alpha"] * torch.einsum("kd,bnd->bkn", a, e))
    m = torch.zeros_like(sim).scatter_(1, sim.argmax(1, keepdim=True), 1.0)
    c = (torch.einsum("bkn,bnd->bkd", sim * m, e) + a[None]) / (m.sum(-1, keepdim=True) + 1)
    fd = F.normalize(e + torch.einsum("bkn,bkd->bnd", sim, c), dim=-1)[0]
    w = F.softmax(f @ s.T / (D ** 0.5) / 0.1, dim=-1)
    fr = F.normalize(f + w @ s, dim=-1)
out = {}
for name, t in [("s", s), ("fd", fd), ("fr", fr)]:
    ours = np.load(sys.argv[1] + "/" + name + ".npy")
    out[name] = float(np.abs(ours - t.numpy()).max())
print(json.dumps(out))
"#;

#[test]
fn clot_forward_kernels_match_pytorch_modules() {
    let required = std::env::var("CLOT_REQUIRE_TORCH").is_ok_and(|v| v == "1");
    let probe = Command::new("python3")
        .args(["-c", "import torch, safetensors, numpy"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            !required,
            "CLOT_REQUIRE_TORCH=1 but python3 with torch is missing"
        );
        eprintln!("SKIP: python3 with torch and safetensors not found");
        return;
    }
    let (d, n, k, valid) = (40usize, 23usize, 7usize, 19usize);
    let mut cfg = TrainConfig::from_preset(clot_datasets::preset("demo").unwrap(), k);
    cfg.dropout = 0.0;
    let shape = cfg.clot().decoder_shape(d);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut params = ParamSet::default();
    clot_stages::dispatch::init_params(&mut params);
    clot_stages::decode::init_params(&mut params, &shape, &mut rng);
    params.get_mut(clot_stages::dispatch::ALPHA).unwrap()[0] = 1.4;
    params.get_mut(clot_stages::dispatch::BETA).unwrap()[0] = -0.2;
    let mut a: Vec<f32> = (0..k * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    normalize_rows(&mut a, d);
    params.push("clusters", vec![k, d], a.clone());
    let mut f: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    normalize_rows(&mut f, d);
    let tensors = clot_stages::decode::tensors(&params, &shape).unwrap();
    let mask: Vec<bool> = (0..n).map(|t| t < valid).collect();
    let s = dec::forward(&tensors, &shape, &f, &mask, None).out;
    let (mut fdo, _) = fd::forward(&f, &a, (n, k, d), 1.4, -0.2);
    normalize_rows(&mut fdo, d);
    let fr = refine::forward(&f, &s, (n, k, d), 0.1).out;
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(&dir.path().join("params.safetensors"), &params, &cfg).unwrap();
    write_npy_f32(&dir.path().join("f.npy"), n, d, &f).unwrap();
    write_npy_f32(&dir.path().join("s.npy"), k, d, &s).unwrap();
    write_npy_f32(&dir.path().join("fd.npy"), n, d, &fdo).unwrap();
    write_npy_f32(&dir.path().join("fr.npy"), n, d, &fr).unwrap();
    let o = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(dir.path())
        .args([
            d.to_string(),
            n.to_string(),
            k.to_string(),
            valid.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!("max abs difference to PyTorch: {v}");
    for key in ["s", "fd", "fr"] {
        let e = v[key].as_f64().unwrap();
        assert!(e < 1e-5, "{key}: max abs difference {e} to PyTorch");
    }
}
