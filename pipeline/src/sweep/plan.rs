//! A sweep file → the list of trials it describes, each checked before anything runs.
//!
//! ```toml
//! name = "coffee-rho"            # default: the file's stem
//! dataset = "Breakfast"          # `demo`, a .parquet file or a standard-layout folder
//! data = "../shared/data"        # optional root of `dataset` (relative to the sweep file)
//! preset = "breakfast"           # optional: the base settings; the file's values override it
//! activity = "coffee"            # one, a list, or "all" (one trial per activity)
//! epochs = 15                    # any key `clot train` takes, fixed for every trial
//!
//! [grid]                         # the cartesian product of these lists
//! mode = ["clot", "asot"]
//! seed = [0, 1, 2]
//! rho = [0.15, 0.2, 0.25]
//!
//! [random]                       # optional: `samples` draws per grid point, seeded
//! samples = 4
//! seed = 0
//! lr = { log_uniform = [1e-4, 1e-2] }
//! dropout = { uniform = [0.0, 0.3] }
//! heads = { choice = [1, 2, 4] }
//! ```
//!
//! `grid` and `random` may hold any training key and also `dataset`, `preset` and `activity`.
//! Unknown keys (with the closest valid one suggested), empty lists, settings out of range and
//! conflicting settings (`without` with `mode = "asot"`) are errors before any trial runs: every
//! trial is resolved exactly as `clot train` resolves its flags ([`crate::run::resolve_config`]).
//!
//! A trial's id is a hash of its resolved configuration (dataset name, activity, every setting),
//! so the same trial has the same id whichever file or order produced it. `actions = "auto"`
//! (or `"auto:MIN-MAX"`) is resolved here to K̂, estimated from the activity's features once per
//! dataset, activity and range (the caller's [`EstimateK`]); the trial is then the configuration
//! with K̂, so it has the id of the trial with `actions = K̂`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clot_datasets::{Dataset, GENERIC};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use clot_stages::choose_k::{KEstimate, KRange};

use crate::config::{Actions, Overrides, TrainConfig};

/// Keys that choose the data rather than a setting.
const DATA_KEYS: [&str; 3] = ["dataset", "preset", "activity"];
/// Keys of the file's top level that are neither settings nor data.
const FILE_KEYS: [&str; 4] = ["name", "data", "grid", "random"];

/// Every training key (`clot train`'s flags with underscores).
pub fn setting_keys() -> Vec<String> {
    match toml::Value::try_from(TrainConfig::from_preset(&GENERIC, 1)) {
        Ok(toml::Value::Table(t)) => {
            let mut keys: Vec<String> = t.keys().cloned().collect();
            // optional, or left out at their default, so absent from a default configuration
            keys.extend(["device".into(), "exclude".into(), "f1_rng".into()]);
            keys.sort();
            keys
        }
        _ => Vec::new(),
    }
}

/// The data one trial reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DataKey {
    /// What `clot train` would take as its DATASET (joined with `data`).
    pub dataset: String,
    pub data: Option<PathBuf>,
    pub preset: Option<String>,
}

/// One trial before resolution: its data, its activity, and its settings as overrides.
#[derive(Debug, Clone)]
pub struct TrialSpec {
    pub data: DataKey,
    /// An activity name, or `all` (expanded once the data is read).
    pub activity: String,
    pub settings: Overrides,
    /// The sweep file's values for this trial, as given (for listing).
    pub values: BTreeMap<String, toml::Value>,
}

/// A trial ready to run.
#[derive(Debug, Clone)]
pub struct Trial {
    pub id: String,
    pub data: DataKey,
    pub dataset_name: String,
    pub activity: String,
    pub cfg: TrainConfig,
    /// How settings were resolved (e.g. where K came from).
    pub notes: Vec<String>,
    /// With `actions = "auto"`: how K was estimated (shared by the trials of one dataset,
    /// activity and range).
    pub k_estimate: Option<Arc<KEstimate>>,
}

/// K̂ of one activity of one dataset over a range (`None`: the default range), from its features
/// alone ([`crate::run::estimate_actions`]). The sweep computes each once per process.
pub type EstimateK<'a> = dyn FnMut(&DataKey, &str, Option<KRange>) -> Result<Arc<KEstimate>> + 'a;

/// A parsed sweep file.
#[derive(Debug, Clone)]
pub struct SweepFile {
    pub name: String,
    pub specs: Vec<TrialSpec>,
}

/// The valid key closest to `key` (edit distance), for "did you mean".
pub fn closest<'a>(key: &str, valid: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    valid
        .into_iter()
        .map(|v| (edit_distance(key, v), v))
        .filter(|(d, v)| *d <= v.len().max(key.len()) / 2 + 1)
        .min()
        .map(|(_, v)| v)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn unknown_key(key: &str, at: &str, file: &Path) -> anyhow::Error {
    let mut valid = setting_keys();
    valid.extend(DATA_KEYS.iter().map(|s| s.to_string()));
    if at.is_empty() {
        valid.extend(FILE_KEYS.iter().map(|s| s.to_string()));
    }
    let hint = closest(key, valid.iter().map(String::as_str))
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    anyhow::anyhow!("{}: unknown key `{at}{key}`{hint}", file.display())
}

/// One random draw of a `[random]` entry.
fn draw(rng: &mut ChaCha8Rng, key: &str, spec: &toml::Value, file: &Path) -> Result<toml::Value> {
    let bad = || {
        anyhow::anyhow!(
            "{}: random.{key} must be {{ uniform = [a, b] }}, {{ log_uniform = [a, b] }}, \
             {{ int = [a, b] }} or {{ choice = [...] }}",
            file.display()
        )
    };
    let t = spec.as_table().filter(|t| t.len() == 1).ok_or_else(bad)?;
    let (kind, v) = t.iter().next().ok_or_else(bad)?;
    let arr = v.as_array().ok_or_else(bad)?;
    let num = |i: usize| -> Result<f64> {
        arr.get(i)
            .and_then(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
            .ok_or_else(bad)
    };
    Ok(match kind.as_str() {
        "uniform" => toml::Value::Float(rng.random_range(num(0)?..=num(1)?)),
        "log_uniform" => {
            let (a, b) = (num(0)?, num(1)?);
            if !(a > 0.0 && b >= a) {
                bail!(
                    "{}: random.{key}: log_uniform needs 0 < a ≤ b",
                    file.display()
                );
            }
            toml::Value::Float(rng.random_range(a.ln()..=b.ln()).exp())
        }
        "int" => toml::Value::Integer(rng.random_range(num(0)? as i64..=num(1)? as i64)),
        "choice" => {
            if arr.is_empty() {
                bail!("{}: random.{key}: choice of an empty list", file.display());
            }
            arr[rng.random_range(0..arr.len())].clone()
        }
        _ => return Err(bad()),
    })
}

impl SweepFile {
    /// Reads and expands a sweep file (grid × random samples); data paths are relative to it.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading sweep file {}", path.display()))?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Self::parse(table, path)
    }

    /// [`SweepFile::read`] of an already parsed table (`path` for errors and relative paths).
    pub fn parse(mut table: toml::Table, path: &Path) -> Result<Self> {
        let settings = setting_keys();
        let is_key = |k: &str| settings.iter().any(|s| s == k) || DATA_KEYS.contains(&k);
        let name = match table.remove("name") {
            Some(toml::Value::String(s)) => s,
            Some(_) => bail!("{}: name must be a string", path.display()),
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sweep".into()),
        };
        if name.is_empty() || name.contains(['/', '\\', '=']) {
            bail!(
                "{}: name `{name}` must be non-empty, without / \\ or =",
                path.display()
            );
        }
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let data = match table.remove("data") {
            Some(toml::Value::String(s)) => Some(base_dir.join(s)),
            Some(_) => bail!("{}: data must be a path (a string)", path.display()),
            None => None,
        };
        let grid = match table.remove("grid") {
            Some(toml::Value::Table(t)) => t,
            Some(_) => bail!("{}: [grid] must be a table of lists", path.display()),
            None => toml::Table::new(),
        };
        let mut random = match table.remove("random") {
            Some(toml::Value::Table(t)) => Some(t),
            Some(_) => bail!("{}: [random] must be a table", path.display()),
            None => None,
        };
        for k in table.keys() {
            if !is_key(k) {
                return Err(unknown_key(k, "", path));
            }
        }
        let mut axes: Vec<(String, Vec<toml::Value>)> = Vec::new();
        for (k, v) in grid {
            if !is_key(&k) {
                return Err(unknown_key(&k, "grid.", path));
            }
            let values = match v {
                toml::Value::Array(a) => a,
                _ => bail!("{}: grid.{k} must be a list of values", path.display()),
            };
            if values.is_empty() {
                bail!(
                    "{}: grid.{k} is an empty list: it would make no trial",
                    path.display()
                );
            }
            if table.contains_key(&k) {
                bail!(
                    "{}: `{k}` is both a fixed value and in [grid]",
                    path.display()
                );
            }
            axes.push((k, values));
        }
        let (samples, random_seed, random_keys) = match random.as_mut() {
            None => (1, 0, Vec::new()),
            Some(r) => {
                let samples = match r.remove("samples") {
                    Some(toml::Value::Integer(n)) if n > 0 => n as usize,
                    Some(_) => bail!(
                        "{}: random.samples must be a positive integer",
                        path.display()
                    ),
                    None => bail!("{}: [random] needs `samples`", path.display()),
                };
                let seed = match r.remove("seed") {
                    Some(toml::Value::Integer(n)) if n >= 0 => n as u64,
                    Some(_) => bail!("{}: random.seed must be an integer ≥ 0", path.display()),
                    None => 0,
                };
                let mut keys = Vec::new();
                for (k, v) in r.iter() {
                    if !is_key(k) {
                        return Err(unknown_key(k, "random.", path));
                    }
                    if table.contains_key(k) || axes.iter().any(|(a, _)| a == k) {
                        bail!(
                            "{}: `{k}` is in [random] and also fixed or in [grid]",
                            path.display()
                        );
                    }
                    keys.push((k.clone(), v.clone()));
                }
                (samples, seed, keys)
            }
        };
        // the grid in file order (toml keeps keys sorted), last axis fastest
        let mut points: Vec<BTreeMap<String, toml::Value>> = vec![BTreeMap::new()];
        for (k, values) in &axes {
            points = points
                .into_iter()
                .flat_map(|p| {
                    values.iter().map(move |v| {
                        let mut q = p.clone();
                        q.insert(k.clone(), v.clone());
                        q
                    })
                })
                .collect();
        }
        let mut rng = ChaCha8Rng::seed_from_u64(random_seed);
        let mut specs = Vec::new();
        for point in points {
            for _ in 0..samples {
                let mut values: BTreeMap<String, toml::Value> =
                    table.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                values.extend(point.clone());
                for (k, spec) in &random_keys {
                    values.insert(k.clone(), draw(&mut rng, k, spec, path)?);
                }
                specs.push(spec_of(values, data.clone(), path)?);
            }
        }
        Ok(SweepFile { name, specs })
    }
}

/// Splits a trial's values into its data and its settings.
fn spec_of(
    mut values: BTreeMap<String, toml::Value>,
    data: Option<PathBuf>,
    path: &Path,
) -> Result<TrialSpec> {
    let shown = values.clone();
    let text = |v: Option<toml::Value>, key: &str| -> Result<Option<String>> {
        match v {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => bail!("{}: {key} must be a string, got {other}", path.display()),
        }
    };
    let preset = text(values.remove("preset"), "preset")?;
    let dataset = text(values.remove("dataset"), "dataset")?;
    let activity = text(values.remove("activity"), "activity")?;
    let dataset = match (dataset, &preset) {
        (Some(d), _) => d,
        (None, Some(p)) if p != clot_datasets::DEMO => clot_datasets::preset(p)?.folder.to_string(),
        _ => clot_datasets::DEMO.to_string(),
    };
    // a float key given as an integer (rho = 1) is still a float setting
    let table: toml::Table = values.into_iter().collect();
    let settings: Overrides = toml::Value::Table(table)
        .try_into()
        .or_else(|_| coerce_numbers(&shown).try_into())
        .with_context(|| format!("{}: a setting has the wrong type", path.display()))?;
    Ok(TrialSpec {
        data: DataKey {
            dataset,
            data,
            preset,
        },
        activity: activity.unwrap_or_default(),
        settings,
        values: shown,
    })
}

/// The settings of `values` with integers written as floats where that is the only way they
/// parse (`rho = 1`).
fn coerce_numbers(values: &BTreeMap<String, toml::Value>) -> toml::Value {
    let mut t = toml::Table::new();
    for (k, v) in values {
        if DATA_KEYS.contains(&k.as_str()) {
            continue;
        }
        let mut v = v.clone();
        if let toml::Value::Integer(i) = v {
            let as_int: Result<Overrides, _> =
                toml::Value::Table([(k.clone(), v.clone())].into_iter().collect()).try_into();
            if as_int.is_err() {
                v = toml::Value::Float(i as f64);
            }
        }
        t.insert(k.clone(), v);
    }
    toml::Value::Table(t)
}

/// The trial id: FNV-1a (64 bit) of the dataset name, the activity and the configuration's TOML.
pub fn trial_id(dataset_name: &str, activity: &str, cfg: &TrainConfig) -> String {
    let text = format!(
        "dataset = {dataset_name:?}\nactivity = {activity:?}\n{}",
        toml::to_string(cfg).unwrap_or_default()
    );
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// What planning knows of one activity: each video's (name, frames) and its label facts.
#[derive(Debug, Clone, Default)]
pub struct ActivityFacts {
    pub videos: Vec<(String, usize)>,
    pub labels: crate::run::LabelFacts,
}

/// A dataset as planning sees it: its name, D and per-activity facts, without its features (for
/// a Parquet file these come from the index and the label column alone).
#[derive(Debug, Clone)]
pub struct DataFacts {
    pub resolved: crate::commands::Resolved,
    pub name: String,
    pub dim: usize,
    pub activities: BTreeMap<String, ActivityFacts>,
}

impl DataFacts {
    /// The facts of a dataset in memory.
    pub fn of(ds: &Dataset, resolved: crate::commands::Resolved) -> Self {
        let mut activities: BTreeMap<String, Vec<&clot_datasets::Video>> = BTreeMap::new();
        for v in &ds.videos {
            activities.entry(v.activity.clone()).or_default().push(v);
        }
        DataFacts {
            resolved,
            name: ds.name.clone(),
            dim: ds.dim,
            activities: activities
                .into_iter()
                .map(|(a, vs)| {
                    let facts = ActivityFacts {
                        videos: vs.iter().map(|v| (v.name.clone(), v.frames())).collect(),
                        labels: crate::run::LabelFacts::of(vs.iter().copied()),
                    };
                    (a, facts)
                })
                .collect(),
        }
    }
}

/// Resolves every spec against the facts of its dataset, expanding `activity = "all"` (or no
/// activity) to every activity of the data. `actions = "auto"` takes K̂ from `estimate`, and the
/// trial is then the configuration with that K, as in `clot train --actions auto`. Fails on the
/// first trial whose settings do not resolve, naming it; duplicate trials (same id) are kept once.
pub fn resolve(
    specs: &[TrialSpec],
    data: &BTreeMap<DataKey, DataFacts>,
    estimate: &mut EstimateK<'_>,
) -> Result<Vec<Trial>> {
    let mut trials = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, spec) in specs.iter().enumerate() {
        let facts = data
            .get(&spec.data)
            .context("internal: a sweep dataset was not read")?;
        let activities: Vec<&String> = if spec.activity.is_empty() || spec.activity == "all" {
            facts.activities.keys().collect()
        } else {
            vec![&spec.activity]
        };
        let which = || format!("trial {} ({})", i + 1, describe(&spec.values));
        for activity in activities {
            let Some(act) = facts.activities.get(activity) else {
                bail!(
                    "{}: no videos of activity `{activity}` in {} (it has: {})",
                    which(),
                    facts.resolved.spec,
                    facts
                        .activities
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            let k_estimate = match spec.settings.actions {
                Some(Actions::Auto(range)) => {
                    Some(estimate(&spec.data, activity, range).with_context(which)?)
                }
                _ => None,
            };
            let resolved = crate::run::resolve_with_estimate(
                &facts.resolved,
                facts.dim,
                &act.labels,
                activity,
                &Overrides::default(),
                &spec.settings,
                k_estimate.as_deref(),
            )
            .with_context(which)?;
            crate::train::check_lengths(
                &resolved.cfg,
                facts.dim,
                act.videos.iter().map(|(n, f)| (n.as_str(), *f)),
            )
            .with_context(which)?;
            let id = trial_id(&facts.name, activity, &resolved.cfg);
            if seen.insert(id.clone()) {
                trials.push(Trial {
                    id,
                    data: spec.data.clone(),
                    dataset_name: facts.name.clone(),
                    activity: activity.clone(),
                    cfg: resolved.cfg,
                    notes: resolved.notes,
                    k_estimate,
                });
            }
        }
    }
    Ok(trials)
}

/// `key = value, …` of a trial's values as the file gave them.
pub fn describe(values: &BTreeMap<String, toml::Value>) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The trials of shard `index` of `count`: those whose id, read as a number, is `index` modulo
/// `count` (deterministic, independent of order and of the other shards).
pub fn shard(trials: Vec<Trial>, index: usize, count: usize) -> Vec<Trial> {
    trials
        .into_iter()
        .filter(|t| u64::from_str_radix(&t.id, 16).unwrap_or(0) % count as u64 == index as u64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SweepFile> {
        SweepFile::parse(toml::from_str(text).unwrap(), Path::new("/x/s.toml"))
    }

    #[test]
    fn grid_and_random_expand_in_order() {
        let s = parse(
            "epochs = 2\n[grid]\nmode = [\"clot\", \"asot\"]\nseed = [0, 1, 2]\n\
             [random]\nsamples = 2\nlr = { log_uniform = [1e-4, 1e-2] }\n",
        )
        .unwrap();
        assert_eq!(s.name, "s");
        assert_eq!(s.specs.len(), 12);
        assert_eq!(s.specs[0].settings.mode.as_deref(), Some("clot"));
        assert_eq!(s.specs[0].settings.seed, Some(0));
        assert_eq!(s.specs[2].settings.seed, Some(1));
        assert_eq!(s.specs[6].settings.mode.as_deref(), Some("asot"));
        assert!(s.specs.iter().all(|t| t.settings.epochs == Some(2)));
        let lr = s.specs[0].settings.lr.unwrap();
        assert!((1e-4..=1e-2).contains(&lr) && s.specs[1].settings.lr != Some(lr));
        // the same file draws the same samples
        let again = parse(
            "epochs = 2\n[grid]\nmode = [\"clot\", \"asot\"]\nseed = [0, 1, 2]\n\
             [random]\nsamples = 2\nlr = { log_uniform = [1e-4, 1e-2] }\n",
        )
        .unwrap();
        assert_eq!(again.specs[5].settings.lr, s.specs[5].settings.lr);
    }

    #[test]
    fn bad_files_fail_before_running_naming_the_key() {
        let e = parse("epoch = 3").unwrap_err().to_string();
        assert!(
            e.contains("`epoch`") && e.contains("did you mean `epochs`"),
            "{e}"
        );
        let e = parse("[grid]\nrhoo = [0.1]").unwrap_err().to_string();
        assert!(e.contains("grid.rhoo") && e.contains("`rho`"), "{e}");
        let e = parse("[grid]\nrho = []").unwrap_err().to_string();
        assert!(e.contains("grid.rho is an empty list"), "{e}");
        let e = parse("rho = 0.1\n[grid]\nrho = [0.2]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("both a fixed value and in [grid]"), "{e}");
        let e = parse("[random]\nsamples = 2\nlr = { normal = [0, 1] }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("random.lr"), "{e}");
        let e = parse("epochs = \"many\"").unwrap_err().to_string();
        assert!(e.contains("wrong type"), "{e:#}");
    }

    #[test]
    fn integers_are_accepted_for_float_settings() {
        let s = parse("rho = 1\n[grid]\nseed = [4]").unwrap();
        assert_eq!(s.specs[0].settings.rho, Some(1.0));
        assert_eq!(s.specs[0].settings.seed, Some(4));
    }

    /// `f1_rng` is a sweep setting (grid or fixed); at its default it leaves the configuration's
    /// TOML, and so every trial id, as they were before the key existed.
    #[test]
    fn f1_rng_is_a_setting_and_moves_no_default_id() {
        use clot_stages::eval::F1Rng;
        let s = parse("[grid]\nf1_rng = [\"chacha8\", \"numpy\"]").unwrap();
        let got: Vec<_> = s.specs.iter().map(|t| t.settings.f1_rng).collect();
        assert_eq!(got, [Some(F1Rng::ChaCha8), Some(F1Rng::Numpy)]);
        let cfg = TrainConfig::from_preset(&GENERIC, 5);
        assert!(!toml::to_string(&cfg).unwrap().contains("f1_rng"));
        let mut np = cfg.clone();
        np.f1_rng = F1Rng::Numpy;
        assert!(toml::to_string(&np).unwrap().contains("f1_rng = \"numpy\""));
        assert_ne!(trial_id("d", "a", &cfg), trial_id("d", "a", &np));
    }

    /// `device` is a sweep setting (grid or fixed); at `cpu` it leaves the configuration (and so
    /// the trial id) as before the key existed.
    #[test]
    fn device_is_a_setting_and_moves_no_default_id() {
        use clot_stages::gpu::DeviceChoice;
        let s = parse("[grid]\ndevice = [\"cpu\", \"wgpu\", \"auto\"]").unwrap();
        let got: Vec<_> = s.specs.iter().map(|t| t.settings.device).collect();
        assert_eq!(
            got,
            [
                Some(DeviceChoice::Cpu),
                Some(DeviceChoice::Wgpu),
                Some(DeviceChoice::Auto)
            ]
        );
        let cfg = TrainConfig::from_preset(&GENERIC, 7);
        assert!(!toml::to_string(&cfg).unwrap().contains("device"));
        let mut gpu = cfg.clone();
        gpu.device = DeviceChoice::Wgpu;
        assert!(toml::to_string(&gpu).unwrap().contains("device = \"wgpu\""));
        assert_ne!(trial_id("d", "a", &cfg), trial_id("d", "a", &gpu));
        assert!(parse("[grid]\ndevice = [\"gpu\"]").is_err());
    }

    #[test]
    fn ids_are_stable_and_shards_partition() {
        let cfg = TrainConfig::from_preset(&GENERIC, 5);
        let a = trial_id("d", "act", &cfg);
        assert_eq!(a, trial_id("d", "act", &cfg.clone()));
        assert_ne!(a, trial_id("d", "other", &cfg));
        let mut c2 = cfg.clone();
        c2.seed = 1;
        assert_ne!(a, trial_id("d", "act", &c2));
        let trials: Vec<Trial> = (0..40)
            .map(|s| {
                let mut c = cfg.clone();
                c.seed = s;
                Trial {
                    id: trial_id("d", "a", &c),
                    data: DataKey {
                        dataset: "demo".into(),
                        data: None,
                        preset: None,
                    },
                    dataset_name: "d".into(),
                    activity: "a".into(),
                    cfg: c,
                    notes: Vec::new(),
                    k_estimate: None,
                }
            })
            .collect();
        let mut all: Vec<String> = (0..3)
            .flat_map(|i| shard(trials.clone(), i, 3).into_iter().map(|t| t.id))
            .collect();
        all.sort();
        let mut ids: Vec<String> = trials.iter().map(|t| t.id.clone()).collect();
        ids.sort();
        assert_eq!(all, ids, "every trial in exactly one shard");
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            closest("alpha_tran", ["alpha_train", "alpha_eval"]),
            Some("alpha_train")
        );
        assert_eq!(closest("zzzzzzzz", ["rho"]), None);
    }
}
