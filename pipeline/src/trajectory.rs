//! Step-by-step comparison of a recorded clot run with its replay by the PyTorch peer
//! (`clot train --record-draws`, `bench/python/trajectory_peer.py`, `clot-bench trajectory`).
//!
//! Both files use the names of [`crate::train::fit_recording`]. Per training step: the relative
//! difference of each loss term and the largest absolute difference of the parameters after the
//! step; for the steps recorded in detail, every stage output and gradient; at the end, the
//! share of evaluation frames predicted alike. [`Comparison::separation`] names the first step
//! and quantity over a tolerance.
//!
//! **Adam's first step.** `torch.optim.Adam` moves each parameter by lr·h/(|h| + ε) on step 1,
//! with h = g + wd·θ. Where h is at rounding level, rounding decides the step, whatever the
//! implementation. That happens wherever weight decay cancels the gradient, and always for the
//! attention key biases (the middle third of each `in_proj_bias`): their gradient is exactly 0,
//! since softmax ignores a constant shift, so they never change what the model computes and both
//! sides move them by rounding noise at every step. Key biases (every step) and elements with
//! |h| < [`ADAM_NOISE_FLOOR`] on either side (step 1) are counted apart
//! ([`StepDiff::noise_elements`]) and left out of [`StepDiff::param_conditioned`].

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use safetensors::{Dtype, SafeTensors};
use serde::Serialize;

/// |g + wd·θ| below which Adam's first step is decided by rounding (see the module docs).
pub const ADAM_NOISE_FLOOR: f64 = 1e-6;

/// A tensor read back as f64.
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// Every tensor of a safetensors file (f32, f64 or i64) as f64, by name, and its metadata.
pub fn read(path: &Path) -> Result<(BTreeMap<String, Values>, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let b = view.data();
        let data: Vec<f64> = match view.dtype() {
            Dtype::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            Dtype::F64 => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            Dtype::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64)
                .collect(),
            other => bail!("{}: tensor {name} has dtype {other:?}", path.display()),
        };
        out.insert(
            name,
            Values {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| anyhow!("{e}"))?;
    let meta = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok((out, meta))
}

/// How one training step compares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepDiff {
    pub step: usize,
    /// Each loss term: (name, clot, peer).
    pub losses: Vec<(String, f64, f64)>,
    /// The largest |clot − peer| / |peer| over the loss terms, and its term.
    pub loss_rel: f64,
    pub loss_worst: String,
    /// The largest |clot − peer| over the parameters after the step, and its tensor.
    pub param_max: f64,
    pub param_worst: String,
    /// As `param_max`, without the attention key biases and, at step 1, the elements whose
    /// first Adam step is rounding-decided.
    pub param_conditioned: f64,
    /// Elements left out of `param_conditioned`, of all.
    pub noise_elements: (usize, usize),
}

/// The largest difference of one quantity recorded in detail, relative to its scale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detail {
    pub name: String,
    pub max_abs: f64,
    /// The largest |peer| of the quantity.
    pub scale: f64,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub steps: Vec<StepDiff>,
    /// Stage outputs and gradients of the steps recorded in detail, in name order.
    pub details: Vec<Detail>,
    /// Evaluation frames whose predictions agree, of all.
    pub eval_agree: (usize, usize),
}

fn get<'a>(m: &'a BTreeMap<String, Values>, name: &str, which: &str) -> Result<&'a Values> {
    m.get(name)
        .ok_or_else(|| anyhow!("the {which} file has no tensor `{name}`"))
}

fn max_abs_diff(a: &Values, b: &Values, name: &str) -> Result<f64> {
    if a.shape != b.shape {
        bail!(
            "`{name}` has shape {:?} in clot's file, {:?} in the peer's",
            a.shape,
            b.shape
        );
    }
    Ok(a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max))
}

/// The elements of `tensor` (of `len` values) that are attention key biases: the middle third of
/// an `in_proj_bias`.
fn key_bias(tensor: &str, len: usize) -> std::ops::Range<usize> {
    if tensor.ends_with("in_proj_bias") {
        len / 3..2 * len / 3
    } else {
        0..0
    }
}

/// Compares clot's recording `ours` with the peer's replay `peer`; `weight_decay` is the run's.
pub fn compare(
    ours: &BTreeMap<String, Values>,
    peer: &BTreeMap<String, Values>,
    weight_decay: f64,
) -> Result<Comparison> {
    let mut steps = Vec::new();
    for s in 1.. {
        let sc = format!("step{s}");
        if !peer.contains_key(&format!("{sc}/loss/total")) {
            break;
        }
        let mut losses = Vec::new();
        for (name, v) in peer.range(format!("{sc}/loss/")..format!("{sc}/loss0")) {
            let term = name.rsplit('/').next().unwrap_or_default().to_string();
            let o = get(ours, name, "clot")?.data[0];
            losses.push((term, o, v.data[0]));
        }
        let (loss_rel, loss_worst) = losses
            .iter()
            .map(|(n, o, p)| ((o - p).abs() / p.abs().max(1e-12), n.clone()))
            .fold((0.0, String::new()), |a, b| if b.0 > a.0 { b } else { a });
        let (mut param_max, mut param_worst, mut conditioned) = (0.0f64, String::new(), 0.0f64);
        let (mut noisy, mut total) = (0usize, 0usize);
        let prefix = format!("{sc}/param/");
        for (name, p) in peer.range(prefix.clone()..format!("{sc}/param0")) {
            let o = get(ours, name, "clot")?;
            let d = max_abs_diff(o, p, name)?;
            let tensor = &name[prefix.len()..];
            if d > param_max {
                (param_max, param_worst) = (d, tensor.to_string());
            }
            // step 1: leave out the elements whose Adam step rounding decides
            let h = |which: &BTreeMap<String, Values>| -> Option<Vec<f64>> {
                let g = which.get(&format!("step1/grad/{tensor}"))?;
                let init = ours.get(&format!("init/{tensor}"))?;
                Some(
                    g.data
                        .iter()
                        .zip(&init.data)
                        .map(|(g, t)| g + weight_decay * t)
                        .collect(),
                )
            };
            total += p.data.len();
            let keys = key_bias(tensor, p.data.len());
            let hs = if s == 1 { h(ours).zip(h(peer)) } else { None };
            for (i, (x, y)) in o.data.iter().zip(&p.data).enumerate() {
                let rounding = hs.as_ref().is_some_and(|(ho, hp)| {
                    ho[i].abs() < ADAM_NOISE_FLOOR || hp[i].abs() < ADAM_NOISE_FLOOR
                });
                if keys.contains(&i) || rounding {
                    noisy += 1;
                } else {
                    conditioned = conditioned.max((x - y).abs());
                }
            }
        }
        steps.push(StepDiff {
            step: s,
            losses,
            loss_rel,
            loss_worst,
            param_max,
            param_worst,
            param_conditioned: conditioned,
            noise_elements: (noisy, total),
        });
    }
    if steps.is_empty() {
        bail!("the peer's file has no training steps (step1/loss/total)");
    }
    let mut details = Vec::new();
    for (name, p) in peer {
        if name.contains("/fwd/") || name.contains("/grad/") {
            let o = get(ours, name, "clot")?;
            details.push(Detail {
                name: name.clone(),
                max_abs: max_abs_diff(o, p, name)?,
                scale: p.data.iter().map(|x| x.abs()).fold(0.0, f64::max),
            });
        }
    }
    let (mut agree, mut all) = (0, 0);
    for (name, p) in peer.range("eval/".to_string().."eval0".to_string()) {
        if name.ends_with("/pred") {
            let o = get(ours, name, "clot")?;
            agree += o.data.iter().zip(&p.data).filter(|(a, b)| a == b).count();
            all += p.data.len();
        }
    }
    Ok(Comparison {
        steps,
        details,
        eval_agree: (agree, all),
    })
}

impl Comparison {
    /// The first step whose loss terms differ by more than `loss_rel` (relative) or whose
    /// parameters (well-conditioned ones at step 1) differ by more than `param_abs`, with the
    /// quantity: `None` when the trajectories never separate.
    pub fn separation(&self, loss_rel: f64, param_abs: f64) -> Option<(usize, String)> {
        self.steps.iter().find_map(|s| {
            if s.loss_rel > loss_rel {
                Some((
                    s.step,
                    format!("loss term `{}` ({:.2e} relative)", s.loss_worst, s.loss_rel),
                ))
            } else if s.param_conditioned > param_abs {
                Some((
                    s.step,
                    format!("parameter `{}` ({:.2e})", s.param_worst, s.param_max),
                ))
            } else {
                None
            }
        })
    }

    /// A plain-text table of the comparison.
    pub fn table(&self) -> String {
        let mut t = String::new();
        t.push_str("step  loss rel. diff (worst term)      params max |diff| (tensor)                              well-cond.\n");
        for s in &self.steps {
            t.push_str(&format!(
                "{:>4}  {:>9.2e} {:<20}  {:>9.2e} {:<44} {:>9.2e}\n",
                s.step, s.loss_rel, s.loss_worst, s.param_max, s.param_worst, s.param_conditioned
            ));
        }
        if let Some(s) = self.steps.first() {
            let keys = self.steps.get(1).map_or(0, |s| s.noise_elements.0);
            t.push_str(&format!(
                "well-cond.: without the {keys} attention key-bias elements (zero gradient: softmax ignores a shift) and, at step 1, \
                 {} elements with |g + wd·θ| < {ADAM_NOISE_FLOOR:e}, where Adam's first step is rounding-decided ({} elements in all)\n",
                s.noise_elements.0.saturating_sub(keys),
                s.noise_elements.1
            ));
        }
        if !self.details.is_empty() {
            t.push_str("detail (steps recorded in full): quantity, max |diff|, scale\n");
            for d in &self.details {
                t.push_str(&format!(
                    "  {:<60} {:>9.2e} {:>9.2e}\n",
                    d.name, d.max_abs, d.scale
                ));
            }
        }
        let (a, n) = self.eval_agree;
        t.push_str(&format!(
            "evaluation: {a} of {n} frames predicted alike ({:.4} %)\n",
            100.0 * a as f64 / n.max(1) as f64
        ));
        t
    }
}

/// Records one run of the `clot` binary (`clot -q train <train_args> --record-draws`), replays
/// it with `python3 trajectory_peer.py` (`peer_script`) on the standard-layout folder `root`, and
/// compares the two; the files go into `dir`.
pub fn record_and_replay(
    clot: &Path,
    python: &str,
    peer_script: &Path,
    train_args: &[String],
    root: &Path,
    dir: &Path,
) -> Result<Comparison> {
    use std::process::Command;
    let ours = dir.join("clot.safetensors");
    let peer = dir.join("peer.safetensors");
    let o = Command::new(clot)
        .args(["-q", "train"])
        .args(train_args)
        .arg("--record-draws")
        .arg(&ours)
        .arg("--out")
        .arg(dir.join("run"))
        .output()
        .with_context(|| format!("running {}", clot.display()))?;
    if !o.status.success() {
        bail!(
            "clot train {train_args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = Command::new(python)
        .arg(peer_script)
        .arg(&ours)
        .arg(root)
        .arg(&peer)
        .arg("1")
        .output()
        .with_context(|| format!("running {python}"))?;
    if !o.status.success() {
        bail!(
            "{} failed: {}",
            peer_script.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    compare_files(&ours, &peer)
}

/// Reads both files and compares them ([`compare`], the weight decay from clot's configuration).
pub fn compare_files(ours: &Path, peer: &Path) -> Result<Comparison> {
    let (o, meta) = read(ours)?;
    let (p, _) = read(peer)?;
    let cfg: crate::config::TrainConfig = toml::from_str(
        meta.get(crate::output::CHECKPOINT_CONFIG)
            .ok_or_else(|| anyhow!("{}: no clot.config metadata", ours.display()))?,
    )
    .with_context(|| format!("{}: the recorded configuration", ours.display()))?;
    compare(&o, &p, cfg.weight_decay as f64)
}
