//! Command-line arguments of `clot` (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clot_stages::eval::F1Rng;
use clot_stages::gpu::DeviceChoice;

/// clot: unsupervised temporal action segmentation with closed-loop optimal transport.
///
/// A dataset argument is `demo` (the built-in synthetic dataset), a `.parquet` dataset written by
/// `clot convert` or `clot synth`, or a folder in the standard layout
/// (`features/<activity>/<video>.txt|.npy`, `groundTruth/<video>`, `mapping/mapping.txt`).
#[derive(Debug, Parser)]
#[command(name = "clot", version, about, long_about)]
pub struct Cli {
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Worker threads for the parallel stages (default: all cores). Results are identical for
    /// a given seed and thread count.
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe a dataset: videos, lengths, D, classes, K per activity, label histogram
    ///
    /// Also the zero rows per video and, with --baselines, the equal-split and k-means scores.
    ///
    /// Examples:
    ///   clot inspect demo --baselines
    ///   clot inspect --data ~/data Breakfast --preset breakfast --activity coffee
    #[command(verbatim_doc_comment)]
    Inspect(InspectArgs),
    /// Convert a dataset (standard layout, Parquet or demo) into a Parquet dataset
    ///
    /// One row per frame, row groups aligned to videos.
    ///
    /// Example:
    ///   clot convert --data ~/data Breakfast --preset breakfast --out breakfast.parquet
    #[command(verbatim_doc_comment)]
    Convert(ConvertArgs),
    /// Generate a synthetic dataset with known ground truth (the demo by default)
    ///
    /// Written as a standard-layout folder or, if OUT ends in `.parquet`, a Parquet dataset.
    ///
    /// Examples:
    ///   clot synth --out demo-data
    ///   clot synth --videos 100 --actions 10 --seed 3 --out big.parquet
    #[command(verbatim_doc_comment)]
    Synth(SynthArgs),
    /// Run the ASOT solver on your own cost or affinity matrix and score the segmentation
    ///
    /// INPUT is an N×K `.npy` (float32/float64; one video, named after the file) or a
    /// `frame_matrix` Parquet file (video, frame, values) with one or more videos. With --out, the
    /// plans and the argmax segmentation are written as Parquet. With --gt and --mapping, the
    /// segmentation is scored (MoF, sampled F1, mIoU; activity and video level; segmental F1 and
    /// Edit as extras). This is how to check the solver against your own PyTorch runs.
    ///
    /// Example (the reference's settings for Breakfast salat):
    ///   clot solve salat.npy --affinity --eps 0.01 --alpha 0.6 --radius 0.04 \
    ///       --lambda-actions 0.06 --gt groundTruth/P36_webcam01_P36_salat \
    ///       --mapping mapping.txt --out solved
    #[command(verbatim_doc_comment)]
    Solve(SolveArgs),
    /// Train and evaluate (the demo data by default), print the scores, write a run folder
    ///
    /// The run folder holds Parquet predictions, metrics, summary and training curve, the
    /// checkpoint, and the pictures segments.png/.svg and curve.png/.svg.
    ///
    /// Examples:
    ///   clot run
    ///   clot run --seed 3 --epochs 30 --out runs/demo-3
    #[command(verbatim_doc_comment, allow_negative_numbers = true)]
    Run(RunArgs),
    /// Train and evaluate on one activity of any dataset, with or without a preset
    ///
    /// Every hyperparameter can be set as a flag or in a TOML file (flags override the file, the
    /// file overrides the preset or, without one, the defaults). Without a preset D comes from
    /// the data, the MLP is D-128-40 and K is --actions (else the classes present).
    ///
    /// Examples:
    ///   clot train my-data --actions 12
    ///   clot train --data ~/data --dataset Breakfast --activity coffee --preset breakfast \
    ///       --seed 0 --out runs/coffee-0
    #[command(verbatim_doc_comment, allow_negative_numbers = true)]
    Train(RunArgs),
    /// Evaluate a checkpoint written by clot run/train on a dataset
    ///
    /// Full-length videos, the eval OT settings; the configuration comes from the checkpoint.
    ///
    /// Example:
    ///   clot eval --checkpoint runs/coffee-0/checkpoint.safetensors \
    ///       --data ~/data --dataset Breakfast --activity coffee --preset breakfast
    #[command(verbatim_doc_comment)]
    Eval(EvalArgs),
    /// Run many trials: a grid or random samples over any setting, seeds and activities
    ///
    /// Trials run on a worker pool (--jobs workers, each with --threads-per-trial threads); each
    /// equals the `clot train` run of the same settings bit for bit at that thread count. Results
    /// are a Hive-partitioned Parquet dataset, OUT/sweep=NAME/trial=ID/trial.parquet (one row:
    /// every setting as a typed column, the metrics, status and error) with per-video metrics and
    /// the training curve beside it. A failing trial is recorded and the others go on.
    ///
    /// Examples:
    ///   clot sweep examples/sweeps/demo.toml --out sweeps --dry-run
    ///   clot sweep examples/sweeps/demo.toml --out sweeps --jobs 2
    ///   clot sweep big.toml --out /shared/results --shard 0/4 --resume
    #[command(verbatim_doc_comment)]
    Sweep(SweepArgs),
    /// Summarise sweep results: configurations over seeds, the best one, tables and pictures
    ///
    /// Reads every trial.parquet below RESULTS. Trials that differ only in seed form one
    /// configuration: mean ± std over seeds of MoF, F1 and mIoU (activity and video level), the
    /// mean final loss and wall time, the share of collapsed runs; failed trials are counted and
    /// listed, not averaged. The best configuration, per activity and overall, is chosen by ground
    /// truth (--by, the oracle choice papers report) and label-free (the lowest mean final loss
    /// within each graph: the losses of different graphs are not comparable). Writes
    /// configurations.parquet/.csv, best.csv and pictures (PNG and SVG) of the metric against
    /// each swept setting, the best configuration's training curves and, with predictions, its
    /// segmentations.
    ///
    /// Examples:
    ///   clot report sweeps
    ///   clot report sweeps --by f1 --out sweeps/report-f1
    ///   clot report sweeps --json
    #[command(verbatim_doc_comment)]
    Report(ReportArgs),
    /// Print a mode's stage graph: phases in order, each stage with what it reads and writes
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// A TOML file of hyperparameters (same names as the flags, with underscores).
    #[arg(long, help_heading = "Model")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: crate::config::Overrides,
    /// The run folder to write. Default: runs/DATASET-ACTIVITY-MODE-seedSEED.
    #[arg(long, short, help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// Also print the time spent in each stage.
    #[arg(long, help_heading = "Output")]
    pub profile: bool,
    /// Videos drawn in segments.png.
    #[arg(long, default_value_t = 6, help_heading = "Output")]
    pub plot_videos: usize,
    /// Also write every random draw of the run (initial parameters with the k-means A, each
    /// epoch's video order, each batch's sampled frames, SWD directions, dropout masks) and each
    /// step's losses and parameters to this safetensors file, for the PyTorch peer to replay
    /// (`bench/python/trajectory_peer.py`, `clot-bench trajectory`).
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub record_draws: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// A checkpoint.safetensors written by clot.
    #[arg(long, help_heading = "Model")]
    pub checkpoint: PathBuf,
    /// Where the kernels run (cpu, wgpu or auto; see `clot train --help`). Default: the
    /// checkpoint's setting.
    #[arg(long, value_name = "DEVICE", help_heading = "Model")]
    pub device: Option<DeviceChoice>,
    /// A folder to write predictions, metrics and the picture into.
    #[arg(long, short, help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// Videos drawn in segments.png.
    #[arg(long, default_value_t = 6, help_heading = "Output")]
    pub plot_videos: usize,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The sweep file (TOML): fixed settings, `[grid]` lists, `[random]` draws (see the README).
    pub file: PathBuf,
    /// The results folder (the sweep goes under OUT/sweep=NAME).
    #[arg(long, short, default_value = "sweeps")]
    pub out: PathBuf,
    /// List the trials (id, dataset, activity, settings) and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Trials run at once. Default: the cores divided by --threads-per-trial.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Threads of each trial's parallel stages (its own pool).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads_per_trial: usize,
    /// Run only the trials not already done in OUT (a failed trial runs again).
    #[arg(long)]
    pub resume: bool,
    /// Run shard INDEX of COUNT (trials split by id). Default: from a Slurm job array
    /// (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT) or a Kubernetes indexed job
    /// (JOB_COMPLETION_INDEX with CLOT_SHARDS), else the whole sweep.
    #[arg(long, value_name = "INDEX/COUNT")]
    pub shard: Option<String>,
    /// Also write each trial's per-frame predictions.
    #[arg(long)]
    pub predictions: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The results folder of `clot sweep --out` (every trial.parquet below it is read).
    pub results: PathBuf,
    /// Where the tables and pictures go. Default: RESULTS/report.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// The ground-truth metric the best configuration has the highest mean of.
    #[arg(
        long,
        default_value = "mof",
        value_parser = ["mof", "f1", "miou", "video_mof", "video_f1", "video_miou"]
    )]
    pub by: String,
    /// Print JSON (configurations, best choices, files) instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The mode whose graph to print: clot or asot.
    #[arg(long, default_value = "clot")]
    pub mode: String,
    /// Stages removed from the clot graph: swd, dispatch, decoder, refine.
    #[arg(long, value_delimiter = ',')]
    pub without: Vec<String>,
}

/// How a video's activity is found in a standard-layout folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActivityRuleArg {
    /// The sub-folder of `features/` (files directly in `features/`: one activity, `all`).
    Folder,
    /// Breakfast: the last `_` token of the video name (`P03_cam01_P03_coffee` → coffee).
    Breakfast,
    /// YouTube Instructional: all but the last `_` token (`changing_tire_0001` → changing_tire).
    Yti,
    /// One activity, `all`, for every video.
    Single,
}

impl From<ActivityRuleArg> for clot_datasets::ActivityRule {
    fn from(a: ActivityRuleArg) -> Self {
        match a {
            ActivityRuleArg::Folder => clot_datasets::ActivityRule::Folder,
            ActivityRuleArg::Breakfast => clot_datasets::ActivityRule::LastToken,
            ActivityRuleArg::Yti => clot_datasets::ActivityRule::AllButLastToken,
            ActivityRuleArg::Single => clot_datasets::ActivityRule::Single,
        }
    }
}

/// Which dataset to read, shared by the commands that read one.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Data")]
pub struct DatasetArgs {
    /// `demo`, a `.parquet` file or a standard-layout folder. Default: the preset's folder name
    /// (under --data), or `demo` without a preset.
    pub dataset: Option<String>,
    /// The dataset, as a flag (same as the positional DATASET).
    #[arg(long = "dataset", value_name = "DATASET", conflicts_with = "dataset")]
    pub dataset_flag: Option<String>,
    /// Folder that holds the datasets (e.g. the one containing `Breakfast/`).
    #[arg(long, value_name = "ROOT")]
    pub data: Option<PathBuf>,
    /// A benchmark's published settings (optional; your own data needs none): activity rule,
    /// mapping file, feature dimension, K per activity and training settings. One of: breakfast,
    /// yti, 50salads-eval, 50salads-mid, desktop-assembly, demo. A Parquet dataset keeps the
    /// activities and labels it was written with; the preset then supplies the settings only.
    #[arg(long, short)]
    pub preset: Option<String>,
    /// How a video's activity is found in a folder. Default: the preset's rule, else `folder`.
    #[arg(long, value_enum, value_name = "RULE")]
    pub activity_rule: Option<ActivityRuleArg>,
    /// Only these activities (repeat the flag or separate with commas).
    #[arg(long, short, value_delimiter = ',')]
    pub activity: Vec<String>,
    /// Replace NaN/inf feature values by 0 instead of failing (the count is reported).
    #[arg(long)]
    pub zero_non_finite: bool,
    /// Leave out a video that cannot be read (bad numbers, NaN, wrong dimension or length) and
    /// report it, instead of failing (standard-layout folders).
    #[arg(long)]
    pub skip_bad_videos: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also score the equal-split and k-means baselines (activity-level MoF after Hungarian
    /// matching), per activity.
    #[arg(long)]
    pub baselines: bool,
    /// Clusters K for the baselines. Default: the preset's K for the activity, else the number of
    /// ground-truth classes present.
    #[arg(long, requires = "baselines")]
    pub k: Option<usize>,
    /// Seed of the k-means baseline (default 0).
    #[arg(long, requires = "baselines")]
    pub seed: Option<u64>,
}

/// Page compression of a written Parquet file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    Snappy,
    Zstd,
    None,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// The Parquet file to write (written atomically).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Page compression of the Parquet file.
    #[arg(long, value_enum, default_value_t = Compression::Snappy)]
    pub compression: Compression,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output: a folder (standard layout) or a `.parquet` file.
    #[arg(long, short)]
    pub out: PathBuf,
    /// A TOML file with any `SynthConfig` fields (name, activity, seed, videos, actions, dim,
    /// median_len, len_sigma, step_sigma, segment_sigma, swap_prob, skip_prob, repeat_prob,
    /// background_prob, background_scale, max_leading_zeros, prototype_std, progress_std,
    /// style_std, drift_std, drift_corr, noise_std); missing fields take the demo's values.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seed (overrides the config file).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of videos.
    #[arg(long)]
    pub videos: Option<usize>,
    /// Steps of the activity (K is this plus one background class).
    #[arg(long)]
    pub actions: Option<usize>,
    /// Feature dimension D.
    #[arg(long)]
    pub dim: Option<usize>,
    /// Median video length in frames.
    #[arg(long)]
    pub median_len: Option<usize>,
    /// Std of the white noise on every value.
    #[arg(long)]
    pub noise: Option<f32>,
    /// Activity name (also the folder under `features/`).
    #[arg(long)]
    pub activity: Option<String>,
    /// Activities to generate, each with --videos videos and its own seed (seed + index); with
    /// more than one they are named ACTIVITY0, ACTIVITY1, …
    #[arg(long, default_value_t = 1)]
    pub activities: usize,
    /// Page compression when OUT is a `.parquet` file (a folder is plain text: an error there).
    #[arg(long, value_enum)]
    pub compression: Option<Compression>,
}

#[derive(Debug, Args)]
pub struct SolveArgs {
    /// An N×K `.npy` matrix or a `frame_matrix` `.parquet` file.
    #[arg(help_heading = "Input")]
    pub input: PathBuf,
    /// The input holds affinities: cost = 1 − affinity. Default: what a Parquet file's
    /// `clot.matrix_kind` says, else cost.
    #[arg(long, help_heading = "Input", conflicts_with = "cost")]
    pub affinity: bool,
    /// The input holds costs, whatever a Parquet file's `clot.matrix_kind` says.
    #[arg(long, help_heading = "Input")]
    pub cost: bool,
    /// Entropic regularisation ε (> 0).
    #[arg(
        long,
        default_value_t = 0.07,
        allow_negative_numbers = true,
        help_heading = "Solver"
    )]
    pub eps: f32,
    /// Weight α in [0, 1] of the temporal Gromov-Wasserstein term (1 − α on the cost).
    #[arg(
        long,
        default_value_t = 0.4,
        allow_negative_numbers = true,
        help_heading = "Solver"
    )]
    pub alpha: f32,
    /// Temporal radius r as a fraction of N (≥ 0; > 0 when α > 0).
    #[arg(
        long,
        default_value_t = 0.04,
        allow_negative_numbers = true,
        help_heading = "Solver"
    )]
    pub radius: f32,
    /// λ_a ≥ 0, weight of the KL relaxation of the action marginal.
    #[arg(
        long,
        default_value_t = 0.1,
        allow_negative_numbers = true,
        conflicts_with = "balanced_actions",
        help_heading = "Solver"
    )]
    pub lambda_actions: f32,
    /// Mirror-descent iterations (≥ 1).
    #[arg(long, default_value_t = 25, help_heading = "Solver")]
    pub iters: usize,
    /// `auto` (4 / max of the first gradient) or a fixed step > 0.
    #[arg(
        long,
        default_value = "auto",
        allow_hyphen_values = true,
        help_heading = "Solver"
    )]
    pub step: String,
    /// Weight ρ ≥ 0 of the temporal prior |i/N − k/K| added to the cost.
    #[arg(
        long,
        default_value_t = 0.0,
        allow_negative_numbers = true,
        help_heading = "Solver"
    )]
    pub rho: f32,
    /// Enforce the action marginal exactly (Sinkhorn projection) instead of the KL relaxation:
    /// every action then gets N/K frames of mass.
    #[arg(long, help_heading = "Solver")]
    pub balanced_actions: bool,
    /// Relax the frame marginal with a KL term of weight --lambda-frames (only the total mass
    /// stays fixed).
    #[arg(long, conflicts_with = "balanced_actions", help_heading = "Solver")]
    pub unbalanced_frames: bool,
    /// λ_f ≥ 0, weight of the KL relaxation of the frame marginal (with --unbalanced-frames).
    #[arg(
        long,
        default_value_t = 0.1,
        allow_negative_numbers = true,
        requires = "unbalanced_frames",
        help_heading = "Solver"
    )]
    pub lambda_frames: f32,
    /// Ground truth: a file (one label per line) for a single video, or a folder with one file per
    /// video name.
    #[arg(long, requires = "mapping", help_heading = "Scoring")]
    pub gt: Option<PathBuf>,
    /// The mapping file of the ground-truth names (with --gt).
    #[arg(long, requires = "gt", help_heading = "Scoring")]
    pub mapping: Option<PathBuf>,
    /// A ground-truth id excluded from the metrics, e.g. the background's (with --gt).
    #[arg(
        long,
        allow_hyphen_values = true,
        requires = "gt",
        help_heading = "Scoring"
    )]
    pub exclude: Option<i32>,
    /// Seed of the sampled F1 (with --gt).
    #[arg(long, default_value_t = 0, requires = "gt", help_heading = "Scoring")]
    pub f1_seed: u64,
    /// Random stream of the sampled F1 (with --gt): chacha8 (clot's) or numpy (numpy's legacy
    /// RandomState, drawn as ASOT's evaluation draws: the F1 ASOT prints for the same seed).
    #[arg(long, value_name = "RNG", default_value_t = F1Rng::ChaCha8, requires = "gt", help_heading = "Scoring")]
    pub f1_rng: F1Rng,
    /// Where the solver runs: cpu (the reference), wgpu (a GPU adapter; an error without one) or
    /// auto (a real GPU when there is one, else the CPU; never a software adapter).
    #[arg(long, value_name = "DEVICE", default_value_t = DeviceChoice::Cpu, help_heading = "Solver")]
    pub device: DeviceChoice,
    /// Folder to write `plan.parquet` and `segmentation.parquet` into.
    #[arg(long, short, help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}
