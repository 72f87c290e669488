//! Command-line arguments of `clot` (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe a dataset: videos, frames, feature dimension, classes, label histogram, zero rows,
    /// lengths; optionally the equal-split and k-means baselines.
    ///
    /// Examples:
    ///   clot inspect demo --baselines
    ///   clot inspect --data ~/data Breakfast --preset breakfast --activity coffee
    Inspect(InspectArgs),
    /// Convert a dataset (standard layout, Parquet or `demo`) into a Parquet dataset: one row per
    /// frame, row groups aligned to videos.
    ///
    /// Example:
    ///   clot convert --data ~/data Breakfast --preset breakfast --out breakfast.parquet
    Convert(ConvertArgs),
    /// Generate a synthetic dataset with known ground truth (the built-in `demo` by default),
    /// as a standard-layout folder or, if OUT ends in `.parquet`, a Parquet dataset.
    ///
    /// Examples:
    ///   clot synth --out demo-data
    ///   clot synth --videos 100 --actions 10 --seed 3 --out big.parquet
    Synth(SynthArgs),
}

/// Which dataset to read, shared by the commands that read one.
#[derive(Debug, Clone, Args)]
pub struct DatasetArgs {
    /// `demo`, a `.parquet` file or a standard-layout folder. Default: the preset's folder name
    /// (under --data), or `demo` without a preset.
    pub dataset: Option<String>,
    /// Folder that holds the datasets (e.g. the one containing `Breakfast/`).
    #[arg(long, value_name = "ROOT")]
    pub data: Option<PathBuf>,
    /// Dataset preset: sets the activity rule, mapping file, feature dimension and K.
    /// One of: breakfast, yti, 50salads-eval, 50salads-mid, desktop-assembly, demo.
    #[arg(long, short)]
    pub preset: Option<String>,
    /// Only these activities (repeat the flag or separate with commas).
    #[arg(long, short, value_delimiter = ',')]
    pub activity: Vec<String>,
    /// Replace NaN/inf feature values by 0 instead of failing (the count is reported).
    #[arg(long)]
    pub zero_non_finite: bool,
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
    #[arg(long)]
    pub k: Option<usize>,
    /// Seed of the k-means baseline.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
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
    #[arg(long, value_enum, default_value_t = Compression::Snappy)]
    pub compression: Compression,
}
