//! The dataset presets: ASOT's published settings (SPEC §1), which CLOT inherits, as an explicit
//! `const` registry ([`PRESETS`]) with a test per entry. The `demo` preset belongs to the built-in
//! synthetic dataset.

use crate::error::{DatasetError, Result};

/// How a video's activity is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityRule {
    /// The last `_`-separated token of the name (`P03_cam01_P03_coffee` → `coffee`; Breakfast).
    LastToken,
    /// All but the last `_`-separated token (`changing_tire_0001` → `changing_tire`; YTI).
    AllButLastToken,
    /// The folder under `features/` the file sits in; `all` for files directly in `features/`.
    Folder,
    /// One activity, `all`, for every video (50Salads, Desktop Assembly: one run over all videos).
    Single,
}

impl ActivityRule {
    /// The activity of `video`, with `folder` the activity folder it was found in, if any.
    pub fn activity(self, video: &str, folder: Option<&str>) -> String {
        match self {
            ActivityRule::LastToken => video.rsplit('_').next().unwrap_or(video).to_string(),
            ActivityRule::AllButLastToken => match video.rsplit_once('_') {
                Some((head, _)) => head.to_string(),
                None => video.to_string(),
            },
            ActivityRule::Folder => folder.unwrap_or(SINGLE_ACTIVITY).to_string(),
            ActivityRule::Single => SINGLE_ACTIVITY.to_string(),
        }
    }
}

/// The activity name of datasets that are one run over all videos.
pub const SINGLE_ACTIVITY: &str = "all";

/// Settings shared by every preset (SPEC §1, "Common").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Common {
    pub lr: f32,
    pub weight_decay: f32,
    pub batch_videos: usize,
    pub sampled_frames: usize,
    pub temperature: f32,
    pub eps_train: f32,
    pub eps_eval: f32,
    pub lambda_actions_eval: f32,
    pub solver_iters: usize,
    pub seed: u64,
}

/// The common settings.
pub const COMMON: Common = Common {
    lr: 1e-3,
    weight_decay: 1e-4,
    batch_videos: 2,
    sampled_frames: 256,
    temperature: 0.1,
    eps_train: 0.07,
    eps_eval: 0.04,
    lambda_actions_eval: 0.01,
    solver_iters: 25,
    seed: 0,
};

/// One dataset preset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    /// Registry name (`--preset`).
    pub name: &'static str,
    /// The usual folder name of the dataset under the data root.
    pub folder: &'static str,
    /// Number of actions K per activity.
    pub actions: &'static [(&'static str, usize)],
    /// Feature dimension D.
    pub dim: usize,
    /// MLP layer widths, input first.
    pub mlp: &'static [usize],
    pub epochs: usize,
    /// Weight ρ of the temporal prior.
    pub rho: f32,
    /// λ_a in training.
    pub lambda_actions_train: f32,
    /// Radius r of the temporal GW term.
    pub radius: f32,
    pub alpha_train: f32,
    pub alpha_eval: f32,
    /// Per-video standardisation of the sampled features.
    pub standardise: bool,
    /// A ground-truth class excluded from the metrics.
    pub exclude: Option<i32>,
    /// How a video's activity is found.
    pub activity_rule: ActivityRule,
    /// The mapping file under `mapping/`.
    pub mapping_file: &'static str,
    /// A ground-truth name that means background (id −1) even where the mapping omits it.
    pub background: Option<&'static str>,
}

impl Preset {
    /// K for `activity`.
    pub fn actions_for(&self, activity: &str) -> Result<usize> {
        self.actions
            .iter()
            .find(|(a, _)| *a == activity)
            .map(|(_, k)| *k)
            .ok_or_else(|| DatasetError::Unknown {
                what: "activity for this preset",
                name: activity.to_string(),
                known: self
                    .actions
                    .iter()
                    .map(|(a, _)| *a)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

const BREAKFAST_ACTIONS: &[(&str, usize)] = &[
    ("pancake", 14),
    ("salat", 8),
    ("friedegg", 9),
    ("scrambledegg", 12),
    ("sandwich", 9),
    ("juice", 8),
    ("milk", 5),
    ("tea", 7),
    ("cereals", 5),
    ("coffee", 7),
];

/// Every preset.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "breakfast",
        folder: "Breakfast",
        actions: BREAKFAST_ACTIONS,
        dim: 64,
        mlp: &[64, 128, 40],
        epochs: 15,
        rho: 0.2,
        lambda_actions_train: 0.1,
        radius: 0.04,
        alpha_train: 0.4,
        alpha_eval: 0.7,
        standardise: true,
        exclude: None,
        activity_rule: ActivityRule::LastToken,
        mapping_file: "mapping.txt",
        background: None,
    },
    Preset {
        name: "yti",
        folder: "YTI",
        actions: &[
            ("changing_tire", 11),
            ("coffee", 10),
            ("cpr", 7),
            ("jump_car", 12),
            ("repot", 8),
        ],
        dim: 3000,
        mlp: &[3000, 32, 32],
        epochs: 10,
        rho: 0.15,
        lambda_actions_train: 0.12,
        radius: 0.04,
        alpha_train: 0.3,
        alpha_eval: 0.6,
        standardise: false,
        exclude: Some(-1),
        activity_rule: ActivityRule::AllButLastToken,
        mapping_file: "mapping.txt",
        background: Some("background"),
    },
    Preset {
        name: "50salads-eval",
        folder: "50Salads",
        actions: &[(SINGLE_ACTIVITY, 12)],
        dim: 64,
        mlp: &[64, 128, 40],
        epochs: 30,
        rho: 0.15,
        lambda_actions_train: 0.11,
        radius: 0.04,
        alpha_train: 0.3,
        alpha_eval: 0.6,
        standardise: false,
        exclude: None,
        activity_rule: ActivityRule::Single,
        mapping_file: "mappingeval.txt",
        background: None,
    },
    Preset {
        name: "50salads-mid",
        folder: "50Salads",
        actions: &[(SINGLE_ACTIVITY, 19)],
        dim: 64,
        mlp: &[64, 128, 40],
        epochs: 30,
        rho: 0.15,
        lambda_actions_train: 0.15,
        radius: 0.04,
        alpha_train: 0.3,
        alpha_eval: 0.6,
        standardise: false,
        exclude: None,
        activity_rule: ActivityRule::Single,
        mapping_file: "mapping.txt",
        background: None,
    },
    Preset {
        name: "desktop-assembly",
        folder: "DesktopAssembly",
        actions: &[(SINGLE_ACTIVITY, 22)],
        dim: 512,
        mlp: &[512, 128, 40],
        epochs: 30,
        rho: 0.25,
        lambda_actions_train: 0.16,
        radius: 0.02,
        alpha_train: 0.3,
        alpha_eval: 0.6,
        standardise: false,
        exclude: None,
        activity_rule: ActivityRule::Single,
        mapping_file: "mapping.txt",
        background: None,
    },
    // The built-in synthetic dataset (`crate::synth::SynthConfig::demo`): Breakfast-like settings.
    Preset {
        name: "demo",
        folder: "demo",
        actions: &[("demo", 7)],
        dim: 64,
        mlp: &[64, 128, 40],
        epochs: 15,
        rho: 0.2,
        lambda_actions_train: 0.1,
        radius: 0.04,
        alpha_train: 0.4,
        alpha_eval: 0.7,
        standardise: true,
        exclude: None,
        activity_rule: ActivityRule::Folder,
        mapping_file: "mapping.txt",
        background: None,
    },
];

/// The settings of a dataset without a preset (a user's own data): the common settings, and for
/// the per-dataset ones the values most SPEC §1 presets share: 30 epochs (3 of 5), ρ 0.15 (3 of 5),
/// r 0.04 (4 of 5), α 0.3/0.6 (4 of 5), no standardisation (4 of 5), λ_a 0.12 in training (the
/// median). D, the MLP (D-128-40) and K come from the data and the flags. Not in [`PRESETS`]: it
/// is no benchmark's.
pub const GENERIC: Preset = Preset {
    name: "none",
    folder: "",
    actions: &[],
    dim: 0,
    mlp: &[],
    epochs: 30,
    rho: 0.15,
    lambda_actions_train: 0.12,
    radius: 0.04,
    alpha_train: 0.3,
    alpha_eval: 0.6,
    standardise: false,
    exclude: None,
    activity_rule: ActivityRule::Folder,
    mapping_file: "mapping.txt",
    background: None,
};

/// Hidden width and embedding size of the MLP without a preset: `D-128-40`.
pub const GENERIC_MLP_TAIL: [usize; 2] = [128, 40];

/// Finds a preset by name.
pub fn preset(name: &str) -> Result<&'static Preset> {
    PRESETS
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| DatasetError::Unknown {
            what: "preset",
            name: name.to_string(),
            known: PRESETS
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(p: &Preset) {
        assert_eq!(preset(p.name).expect("registered").name, p.name);
        assert_eq!(p.mlp.first(), Some(&p.dim), "{}: MLP input is D", p.name);
        assert_eq!(
            p.mlp.last(),
            Some(&40).filter(|_| p.name != "yti").or(Some(&32)),
            "{}",
            p.name
        );
        assert!(p.epochs > 0 && !p.actions.is_empty());
        assert!(p.alpha_train < p.alpha_eval);
        assert!(p.actions.iter().all(|(_, k)| *k >= 2));
    }

    fn get(name: &str) -> &'static Preset {
        let p = preset(name).expect("preset");
        check(p);
        p
    }

    #[test]
    fn breakfast() {
        let p = get("breakfast");
        assert_eq!(p.actions.len(), 10);
        assert_eq!(p.actions_for("coffee").expect("coffee"), 7);
        assert_eq!(p.actions_for("pancake").expect("pancake"), 14);
        assert_eq!(
            (p.dim, p.epochs, p.rho, p.lambda_actions_train),
            (64, 15, 0.2, 0.1)
        );
        assert_eq!(
            (p.radius, p.alpha_train, p.alpha_eval, p.standardise),
            (0.04, 0.4, 0.7, true)
        );
        assert_eq!(
            p.activity_rule.activity("P03_cam01_P03_coffee", None),
            "coffee"
        );
    }

    #[test]
    fn yti() {
        let p = get("yti");
        assert_eq!(p.mlp, &[3000, 32, 32]);
        assert_eq!(p.actions_for("jump_car").expect("k"), 12);
        assert_eq!(
            (p.epochs, p.rho, p.lambda_actions_train, p.exclude),
            (10, 0.15, 0.12, Some(-1))
        );
        assert_eq!(
            p.activity_rule.activity("changing_tire_0001", None),
            "changing_tire"
        );
        assert_eq!(p.background, Some("background"));
    }

    #[test]
    fn salads_eval() {
        let p = get("50salads-eval");
        assert_eq!(p.actions_for(SINGLE_ACTIVITY).expect("k"), 12);
        assert_eq!(
            (p.epochs, p.lambda_actions_train, p.mapping_file),
            (30, 0.11, "mappingeval.txt")
        );
    }

    #[test]
    fn salads_mid() {
        let p = get("50salads-mid");
        assert_eq!(p.actions_for(SINGLE_ACTIVITY).expect("k"), 19);
        assert_eq!(
            (p.lambda_actions_train, p.mapping_file),
            (0.15, "mapping.txt")
        );
    }

    #[test]
    fn desktop_assembly() {
        let p = get("desktop-assembly");
        assert_eq!(p.actions_for(SINGLE_ACTIVITY).expect("k"), 22);
        assert_eq!(
            (p.dim, p.rho, p.lambda_actions_train, p.radius),
            (512, 0.25, 0.16, 0.02)
        );
    }

    #[test]
    fn demo() {
        let p = get("demo");
        assert_eq!(p.actions_for("demo").expect("k"), 7);
    }

    #[test]
    fn registry_is_complete_and_unknown_names_list_known_ones() {
        assert_eq!(PRESETS.len(), 6);
        let msg = preset("breakfst").unwrap_err().to_string();
        assert!(
            msg.contains("breakfast") && msg.contains("desktop-assembly"),
            "{msg}"
        );
        assert!(
            preset("breakfast")
                .expect("p")
                .actions_for("bagel")
                .is_err()
        );
        assert_eq!(COMMON.sampled_frames, 256);
        assert_eq!(COMMON.solver_iters, 25);
    }
}
