//! The training configuration: every hyperparameter of a run, resolved in three layers —
//! the dataset preset (SPEC §1), then a TOML file, then command-line flags (flags override the
//! file, the file overrides the preset). [`Overrides`] is both the flag group and the TOML
//! schema, so the two can never disagree; unknown TOML keys are an error.

use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::Args;
use clot_datasets::{COMMON, Preset};
use clot_stages::batch::ClotConfig;
use clot_stages::choose_k::KRange;
use clot_stages::eval::F1Rng;
use clot_stages::gpu::DeviceChoice;
use clot_stages::ot::cost::{SwdParams, SwdVariant};
use clot_stages::ot::{AsotParams, StepSize};
use serde::{Deserialize, Serialize};

fn is_chacha8(r: &F1Rng) -> bool {
    *r == F1Rng::ChaCha8
}

fn is_cpu(d: &DeviceChoice) -> bool {
    *d == DeviceChoice::Cpu
}

/// A fully resolved run configuration (also written to the run folder and the checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// `clot` (the full loop) or `asot` (encode + OT1 + loss).
    pub mode: String,
    /// Stages removed from the `clot` graph (SPEC §4 ablations): any of swd, dispatch, decoder,
    /// refine.
    pub without: Vec<String>,
    pub seed: u64,
    pub epochs: usize,
    /// Videos per batch.
    pub batch_videos: usize,
    /// Frames sampled per video in training.
    pub sampled_frames: usize,
    pub lr: f32,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f32,
    /// Softmax temperature τ.
    pub temperature: f32,
    /// MLP widths, input first (the last is the embedding size d).
    pub mlp: Vec<usize>,
    /// Number of actions K.
    pub actions: usize,
    /// Weight ρ of the temporal prior.
    pub rho: f32,
    /// Radius r of the temporal GW term.
    pub radius: f32,
    pub alpha_train: f32,
    pub alpha_eval: f32,
    pub eps_train: f32,
    pub eps_eval: f32,
    pub lambda_actions_train: f32,
    pub lambda_actions_eval: f32,
    pub solver_iters: usize,
    /// Per-video standardisation of the sampled features.
    pub standardise: bool,
    /// k-means iterations of the initialisation of A.
    pub kmeans_iters: usize,
    /// Seed of the sampled F1.
    pub f1_seed: u64,
    /// Random stream of the sampled F1: `chacha8` (clot's) or `numpy` (ASOT's evaluation, draw
    /// for draw). Left out of the TOML when `chacha8`, so configurations (and sweep trial ids)
    /// from before the key existed stay the same.
    #[serde(default, skip_serializing_if = "is_chacha8")]
    pub f1_rng: F1Rng,
    /// A ground-truth id excluded from the metrics.
    pub exclude: Option<i32>,
    /// Score the validation crops every this many epochs (0: never).
    pub val_every: usize,
    /// Where the kernels run: `cpu`, `wgpu` or `auto`. With `wgpu` the OT solves run on the GPU
    /// so far; the other stages stay on the CPU. Left out of the TOML when `cpu`, so
    /// configurations (and sweep trial ids) from before the key existed stay the same.
    #[serde(default, skip_serializing_if = "is_cpu")]
    pub device: DeviceChoice,
    /// SWD variant in OT1's cost: `released` or `paper`.
    pub swd_variant: String,
    /// Weight of the SWD term.
    pub swd_weight: f32,
    /// Random directions P of the SWD term.
    pub swd_projections: usize,
    /// Radius of the SWD's circular defining function.
    pub swd_radius: f32,
    /// Decoder attention heads.
    pub heads: usize,
    /// Decoder layers.
    pub decoder_layers: usize,
    /// Segment queries K′ (0: K).
    pub queries: usize,
    /// Decoder dropout in training.
    pub dropout: f32,
    /// Add positions to the decoder's attention values (the released code does).
    pub pos_values: bool,
    /// Temperature τ_ca of the cross-attention refinement.
    pub tau_ca: f32,
}

impl TrainConfig {
    /// The preset's settings for an activity with K actions.
    pub fn from_preset(p: &Preset, actions: usize) -> Self {
        TrainConfig {
            mode: "clot".into(),
            without: Vec::new(),
            seed: COMMON.seed,
            epochs: p.epochs,
            batch_videos: COMMON.batch_videos,
            sampled_frames: COMMON.sampled_frames,
            lr: COMMON.lr,
            weight_decay: COMMON.weight_decay,
            temperature: COMMON.temperature,
            mlp: p.mlp.to_vec(),
            actions,
            rho: p.rho,
            radius: p.radius,
            alpha_train: p.alpha_train,
            alpha_eval: p.alpha_eval,
            eps_train: COMMON.eps_train,
            eps_eval: COMMON.eps_eval,
            lambda_actions_train: p.lambda_actions_train,
            lambda_actions_eval: COMMON.lambda_actions_eval,
            solver_iters: COMMON.solver_iters,
            standardise: p.standardise,
            kmeans_iters: 300,
            f1_seed: 0,
            f1_rng: F1Rng::ChaCha8,
            device: DeviceChoice::Cpu,
            exclude: p.exclude,
            val_every: 1,
            swd_variant: "released".into(),
            swd_weight: 1.0,
            swd_projections: 150,
            swd_radius: 2.0,
            heads: 4,
            decoder_layers: 1,
            queries: 0,
            dropout: 0.1,
            pos_values: true,
            tau_ca: 0.1,
        }
    }

    /// K′: `queries`, or K when 0.
    pub fn queries(&self) -> usize {
        if self.queries == 0 {
            self.actions
        } else {
            self.queries
        }
    }

    /// The settings of CLOT's stages.
    pub fn clot(&self) -> ClotConfig {
        ClotConfig {
            swd_weight: self.swd_weight,
            swd: SwdParams {
                variant: if self.swd_variant == "paper" {
                    SwdVariant::Paper
                } else {
                    SwdVariant::Released
                },
                projections: self.swd_projections,
                radius: self.swd_radius,
            },
            heads: self.heads,
            decoder_layers: self.decoder_layers,
            queries: self.queries(),
            dropout: self.dropout,
            pos_values: self.pos_values,
            tau_ca: self.tau_ca,
        }
    }

    /// The solver settings of training or evaluation.
    pub fn ot(&self, train: bool) -> AsotParams {
        AsotParams {
            eps: if train { self.eps_train } else { self.eps_eval },
            alpha: if train {
                self.alpha_train
            } else {
                self.alpha_eval
            },
            radius: self.radius,
            lambda_actions: if train {
                self.lambda_actions_train
            } else {
                self.lambda_actions_eval
            },
            iters: self.solver_iters,
            step: StepSize::Auto,
            ..AsotParams::default()
        }
    }

    /// Checks every setting's range when the configuration is resolved, naming the key (as in
    /// TOML; the flag is the same with dashes), not later inside a stage.
    pub fn validate(&self, dim: usize) -> Result<()> {
        crate::graphs::check(&self.mode, &self.without)?;
        if !matches!(self.swd_variant.as_str(), "released" | "paper") {
            bail!(
                "swd_variant must be `released` or `paper`, got `{}`",
                self.swd_variant
            );
        }
        if self.mlp.len() < 2 {
            bail!(
                "mlp must list at least the input and output widths, got {:?}",
                self.mlp
            );
        }
        if self.mlp.contains(&0) {
            bail!("mlp widths must be positive, got {:?}", self.mlp);
        }
        if self.mlp[0] != dim {
            bail!(
                "mlp input width {} does not match the dataset's feature dimension D = {dim} \
                 (set mlp = [{dim}, ...] or drop it to take D from the data)",
                self.mlp[0]
            );
        }
        let d = self.mlp.last().copied().unwrap_or(0);
        if self.heads == 0 || !d.is_multiple_of(self.heads) {
            bail!(
                "the embedding size d = {d} must be divisible by heads = {}",
                self.heads
            );
        }
        if self.mode == "clot"
            && !self.without.iter().any(|w| w == "swd")
            && self.swd_projections == 0
        {
            bail!("swd_projections must be positive");
        }
        for (name, v) in [
            ("epochs", self.epochs),
            ("actions", self.actions),
            ("batch_videos", self.batch_videos),
            ("sampled_frames", self.sampled_frames),
            ("solver_iters", self.solver_iters),
            ("decoder_layers", self.decoder_layers),
        ] {
            if v == 0 {
                bail!("{name} must be at least 1, got 0");
            }
        }
        let positive = [
            ("lr", self.lr),
            ("temperature", self.temperature),
            ("tau_ca", self.tau_ca),
            ("eps_train", self.eps_train),
            ("eps_eval", self.eps_eval),
            ("swd_radius", self.swd_radius),
        ];
        for (name, v) in positive {
            if !(v > 0.0 && v.is_finite()) {
                bail!("{name} must be a positive number, got {v}");
            }
        }
        let non_negative = [
            ("weight_decay", self.weight_decay),
            ("rho", self.rho),
            ("radius", self.radius),
            ("lambda_actions_train", self.lambda_actions_train),
            ("lambda_actions_eval", self.lambda_actions_eval),
            ("swd_weight", self.swd_weight),
        ];
        for (name, v) in non_negative {
            if !(v >= 0.0 && v.is_finite()) {
                bail!("{name} must be a number ≥ 0, got {v}");
            }
        }
        for (name, v) in [
            ("alpha_train", self.alpha_train),
            ("alpha_eval", self.alpha_eval),
        ] {
            if !(0.0..=1.0).contains(&v) {
                bail!("{name} must be in [0, 1], got {v}");
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("dropout must be in [0, 1), got {}", self.dropout);
        }
        Ok(())
    }

    /// The settings that differ from the defaults of a dataset without a preset
    /// ([`clot_datasets::GENERIC`] with D-128-40 and the same K), as `key = value` strings in
    /// key order: what a run prints so that its log says how it was configured.
    pub fn differences_from_defaults(&self) -> Vec<String> {
        let dim = self.mlp.first().copied().unwrap_or(0);
        let mut base = TrainConfig::from_preset(&clot_datasets::GENERIC, self.actions);
        base.mlp = generic_mlp(dim);
        let table = |c: &TrainConfig| match toml::Value::try_from(c) {
            Ok(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        };
        let (mine, base) = (table(self), table(&base));
        mine.iter()
            .filter(|(k, v)| base.get(*k) != Some(*v))
            .map(|(k, v)| match v {
                // every float setting is f32: show its shortest f32 form (0.7, not 0.69999…)
                toml::Value::Float(f) => format!("{k} = {}", *f as f32),
                v => format!("{k} = {v}"),
            })
            .collect()
    }

    /// A short stable hash of the configuration (FNV-1a of its TOML), for provenance.
    pub fn hash(&self) -> String {
        let text = toml::to_string(self).unwrap_or_default();
        let mut h: u64 = 0xcbf29ce484222325;
        for b in text.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        format!("{h:016x}")
    }
}

/// The MLP of a dataset without a preset: `D-128-40`.
pub fn generic_mlp(dim: usize) -> Vec<usize> {
    std::iter::once(dim)
        .chain(clot_datasets::GENERIC_MLP_TAIL)
        .collect()
}

/// Hyperparameters given as flags or in a TOML file; each one present replaces the preset's.
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// Graph: `clot` (the full loop, default) or `asot` (encode + OT1 + cross-entropy).
    #[arg(long, help_heading = "Training")]
    pub mode: Option<String>,
    /// Remove stages from the clot graph (ablations; repeat or comma-separate): swd, dispatch,
    /// decoder, refine.
    #[arg(long, value_delimiter = ',', help_heading = "Training")]
    pub without: Option<Vec<String>>,
    /// Seed of everything (initialisation, sampling, shuffling, k-means).
    #[arg(long, help_heading = "Training")]
    pub seed: Option<u64>,
    /// Passes over the training videos.
    #[arg(long, help_heading = "Training")]
    pub epochs: Option<usize>,
    /// Videos per batch.
    #[arg(long, help_heading = "Training")]
    pub batch_videos: Option<usize>,
    /// Frames sampled per video in training.
    #[arg(long, help_heading = "Training")]
    pub sampled_frames: Option<usize>,
    /// Adam learning rate.
    #[arg(long, help_heading = "Training")]
    pub lr: Option<f32>,
    /// L2 weight decay (added to the gradient).
    #[arg(long, help_heading = "Training")]
    pub weight_decay: Option<f32>,
    /// Softmax temperature τ.
    #[arg(long, help_heading = "Model")]
    pub temperature: Option<f32>,
    /// MLP widths, input first, comma-separated (e.g. 64,128,40). Default: the preset's, else
    /// D,128,40 with D the data's feature dimension. The first width is the D the data must have.
    #[arg(long, value_delimiter = ',', help_heading = "Model")]
    pub mlp: Option<Vec<usize>>,
    /// Number of actions K, or `auto` / `auto:MIN-MAX` to estimate K from the features alone
    /// (never the labels; default range 2 to 3·√(median frames per video), at most 40 and at
    /// most the shortest video's frames). Default:
    /// the preset's K for the activity, else the number of ground-truth classes present (this
    /// reads labels; it is said when used).
    #[arg(long, value_name = "K|auto[:MIN-MAX]", help_heading = "Model")]
    pub actions: Option<Actions>,
    /// Weight ρ of the temporal prior.
    #[arg(long, help_heading = "OT")]
    pub rho: Option<f32>,
    /// Radius r of the temporal Gromov-Wasserstein term.
    #[arg(long, help_heading = "OT")]
    pub radius: Option<f32>,
    /// Weight α of the temporal GW term in training, in [0, 1].
    #[arg(long, help_heading = "OT")]
    pub alpha_train: Option<f32>,
    /// Weight α of the temporal GW term in evaluation, in [0, 1].
    #[arg(long, help_heading = "OT")]
    pub alpha_eval: Option<f32>,
    /// Entropic regularisation ε of the training solves (> 0).
    #[arg(long, help_heading = "OT")]
    pub eps_train: Option<f32>,
    /// Entropic regularisation ε of the evaluation solves (> 0).
    #[arg(long, help_heading = "OT")]
    pub eps_eval: Option<f32>,
    /// λ_a, weight of the KL relaxation of the action marginal, in training (≥ 0).
    #[arg(long, help_heading = "OT")]
    pub lambda_actions_train: Option<f32>,
    /// λ_a, weight of the KL relaxation of the action marginal, in evaluation (≥ 0).
    #[arg(long, help_heading = "OT")]
    pub lambda_actions_eval: Option<f32>,
    /// Mirror-descent iterations of each OT solve.
    #[arg(long, help_heading = "OT")]
    pub solver_iters: Option<usize>,
    /// Per-video standardisation of the sampled features (true/false).
    #[arg(long, help_heading = "Model")]
    pub standardise: Option<bool>,
    /// k-means iterations of the initialisation of A.
    #[arg(long, help_heading = "Training")]
    pub kmeans_iters: Option<usize>,
    /// Seed of the sampled F1.
    #[arg(long, help_heading = "Training")]
    pub f1_seed: Option<u64>,
    /// Random stream of the sampled F1: chacha8 (clot's, the default) or numpy (numpy's legacy
    /// RandomState, drawn as ASOT's evaluation draws: the F1 ASOT prints for the same seed).
    #[arg(long, value_name = "RNG", help_heading = "Training")]
    pub f1_rng: Option<F1Rng>,
    /// Where the kernels run: cpu (the reference, the default), wgpu (a GPU adapter; an error
    /// without one) or auto (a real GPU when there is one, never a software adapter). On wgpu the
    /// OT solves and their cosine costs run on the GPU so far; the other stages stay on the CPU.
    #[arg(long, value_name = "DEVICE", help_heading = "Training")]
    pub device: Option<DeviceChoice>,
    /// A ground-truth id excluded from the metrics.
    #[arg(long, allow_hyphen_values = true, help_heading = "Training")]
    pub exclude: Option<i32>,
    /// Score the validation crops (evenly spaced frames) every this many epochs; 0: never.
    #[arg(long, help_heading = "Training")]
    pub val_every: Option<usize>,
    /// SWD variant in OT1's cost: released (sorted order statistics) or paper.
    #[arg(long, help_heading = "CLOT")]
    pub swd_variant: Option<String>,
    /// Weight of the SWD term in OT1's cost.
    #[arg(long, help_heading = "CLOT")]
    pub swd_weight: Option<f32>,
    /// Random directions of the SWD term.
    #[arg(long, help_heading = "CLOT")]
    pub swd_projections: Option<usize>,
    /// Radius of the SWD's circular defining function.
    #[arg(long, help_heading = "CLOT")]
    pub swd_radius: Option<f32>,
    /// Decoder attention heads (must divide d).
    #[arg(long, help_heading = "CLOT")]
    pub heads: Option<usize>,
    /// Decoder layers.
    #[arg(long, help_heading = "CLOT")]
    pub decoder_layers: Option<usize>,
    /// Segment queries K′ (0: K).
    #[arg(long, help_heading = "CLOT")]
    pub queries: Option<usize>,
    /// Decoder dropout in training.
    #[arg(long, help_heading = "CLOT")]
    pub dropout: Option<f32>,
    /// Add positions to the decoder's attention values (true/false).
    #[arg(long, help_heading = "CLOT")]
    pub pos_values: Option<bool>,
    /// Temperature τ_ca of the cross-attention refinement.
    #[arg(long, help_heading = "CLOT")]
    pub tau_ca: Option<f32>,
}

impl Overrides {
    /// Reads a TOML file of overrides; unknown keys are an error naming the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
    }

    /// Applies every present value to `c`.
    pub fn apply(&self, c: &mut TrainConfig) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { c.$f = v.clone(); } )* };
        }
        set!(
            mode,
            seed,
            epochs,
            batch_videos,
            sampled_frames,
            lr,
            weight_decay,
            temperature,
            mlp,
            rho,
            radius,
            alpha_train,
            alpha_eval,
            eps_train,
            eps_eval,
            lambda_actions_train,
            lambda_actions_eval,
            solver_iters,
            standardise,
            kmeans_iters,
            f1_seed,
            f1_rng,
            device,
            val_every,
            without,
            swd_variant,
            swd_weight,
            swd_projections,
            swd_radius,
            heads,
            decoder_layers,
            queries,
            dropout,
            pos_values,
            tau_ca
        );
        if self.exclude.is_some() {
            c.exclude = self.exclude;
        }
        // `auto` is resolved from the features before this ([`crate::run::resolve_config`])
        if let Some(Actions::Fixed(k)) = self.actions {
            c.actions = k;
        }
    }
}

/// What `--actions` (or `actions` in a TOML file or sweep grid) asks for: a given K, or K
/// estimated from the features ([`clot_stages::choose_k`]) over a range (`None`: the default,
/// [`KRange::default_for`] the median video length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actions {
    Fixed(usize),
    Auto(Option<KRange>),
}

impl std::str::FromStr for Actions {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let bad = || {
            format!("`{s}` is not a number of actions, `auto` or `auto:MIN-MAX` (e.g. auto:4-20)")
        };
        if s == "auto" {
            return Ok(Actions::Auto(None));
        }
        if let Some(range) = s.strip_prefix("auto:") {
            let (lo, hi) = range.split_once('-').ok_or_else(bad)?;
            let (min, max) = (
                lo.trim().parse::<usize>().map_err(|_| bad())?,
                hi.trim().parse::<usize>().map_err(|_| bad())?,
            );
            if min < 2 || max < min {
                return Err(format!(
                    "auto:{min}-{max}: the range must have 2 ≤ MIN ≤ MAX"
                ));
            }
            return Ok(Actions::Auto(Some(KRange { min, max })));
        }
        s.parse().map(Actions::Fixed).map_err(|_| bad())
    }
}

impl std::fmt::Display for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actions::Fixed(k) => write!(f, "{k}"),
            Actions::Auto(None) => f.write_str("auto"),
            Actions::Auto(Some(r)) => write!(f, "auto:{r}"),
        }
    }
}

impl Serialize for Actions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Actions::Fixed(k) => s.serialize_u64(*k as u64),
            auto => s.serialize_str(&auto.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Actions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(k) => Ok(Actions::Fixed(k as usize)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_preset() {
        let p = clot_datasets::preset("breakfast").unwrap();
        let mut c = TrainConfig::from_preset(p, 7);
        assert_eq!((c.epochs, c.rho, c.alpha_eval), (15, 0.2, 0.7));
        let file: Overrides = toml::from_str("epochs = 3\nlr = 0.01\nmlp = [64, 32, 16]").unwrap();
        file.apply(&mut c);
        let flags = Overrides {
            epochs: Some(5),
            ..Overrides::default()
        };
        flags.apply(&mut c);
        assert_eq!((c.epochs, c.lr, c.mlp.clone()), (5, 0.01, vec![64, 32, 16]));
        assert_eq!(c.rho, 0.2, "untouched values keep the preset's");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let err = toml::from_str::<Overrides>("epoch = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("epoch"), "{err}");
        let p = clot_datasets::preset("breakfast").unwrap();
        let mut c = TrainConfig::from_preset(p, 7);
        assert!(c.validate(64).is_ok());
        let e = c.validate(32).unwrap_err().to_string();
        assert!(e.contains("D = 32"), "{e}");
        c.lr = -1.0;
        assert!(c.validate(64).unwrap_err().to_string().contains("lr"));
    }

    #[test]
    fn actions_are_a_number_or_auto_in_flags_and_toml() {
        let parse = |t: &str| t.parse::<Actions>();
        assert_eq!(parse("7"), Ok(Actions::Fixed(7)));
        assert_eq!(parse("auto"), Ok(Actions::Auto(None)));
        let r = KRange { min: 4, max: 20 };
        assert_eq!(parse("auto:4-20"), Ok(Actions::Auto(Some(r))));
        assert!(parse("auto:9-3").unwrap_err().contains("2 ≤ MIN ≤ MAX"));
        assert!(parse("auto:1-3").is_err() && parse("seven").is_err() && parse("auto:4").is_err());
        for (text, want) in [
            ("actions = 12", Actions::Fixed(12)),
            ("actions = \"auto\"", Actions::Auto(None)),
            ("actions = \"auto:4-20\"", Actions::Auto(Some(r))),
        ] {
            let o: Overrides = toml::from_str(text).unwrap();
            assert_eq!(o.actions, Some(want), "{text}");
            assert_eq!(toml::to_string(&o).unwrap().trim(), text, "round trip");
        }
        let e = toml::from_str::<Overrides>("actions = \"lots\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auto:MIN-MAX"), "{e}");
        // a fixed K is applied, `auto` is left for the resolver
        let p = clot_datasets::preset("breakfast").unwrap();
        let mut c = TrainConfig::from_preset(p, 7);
        Overrides {
            actions: Some(Actions::Auto(None)),
            ..Overrides::default()
        }
        .apply(&mut c);
        assert_eq!(c.actions, 7);
        Overrides {
            actions: Some(Actions::Fixed(9)),
            ..Overrides::default()
        }
        .apply(&mut c);
        assert_eq!(c.actions, 9);
    }
}
