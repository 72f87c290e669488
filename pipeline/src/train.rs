//! The training driver: puts the videos into a stage graph (one entity each), initialises the
//! parameters (MLP as PyTorch's Linear, A by k-means++ on the untrained embeddings), runs epochs
//! of shuffled batches through Forward → Backward → Step, and evaluates on full-length videos with
//! the eval OT settings (SPEC §4).
//!
//! Seeding: one seed makes a ChaCha8 stream that hands out, in this order, the seeds of the MLP
//! initialisation, of frame sampling (and, in training, dropout and SWD directions), of the epoch
//! shuffles, of k-means and of evaluation (SWD directions of evaluation batches, seeded per video,
//! so that validation passes never move the training stream). Stages parallelise
//! with rayon but combine results in batch order, so a seed and a thread count fix every number.

use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use bevy_ecs::entity::Entity;
use clot_datasets::Video;
use clot_schemas::{FrameEmbeddings, VideoId};
use clot_stages::actions::ACTIONS;
use clot_stages::batch::{
    Batch, Input, LossValue, ModelConfig, OtObjective, Prediction, RunRng, VideoIndex,
};
use clot_stages::encode::init_params;
use clot_stages::eval::{Metrics, activity_level, video_level};
use clot_stages::graph::{Phase, Profile, StageGraph};
use clot_stages::kmeans::kmeans;
use clot_stages::optim::{Adam, AdamConfig};
use clot_stages::params::{Grads, ParamSet, Params};
use clot_stages::sample::Sampling;
use indicatif::ProgressBar;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::TrainConfig;
use crate::graphs;

/// One step of the training curve.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CurvePoint {
    pub epoch: usize,
    pub batch: usize,
    pub step: u64,
    pub loss: f64,
    /// CE(T, P) of the frames.
    pub loss_frames: f64,
    /// CE(T_S, P_S) of the segments (graphs with a decoder).
    pub loss_segments: Option<f64>,
    /// CE(T_R, P_R) of the refined frames (graphs with refinement).
    pub loss_refined: Option<f64>,
    /// Activity-level MoF on the validation crops, on the last batch of each epoch.
    pub val_mof: Option<f64>,
}

/// The result of evaluating one video.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoResult {
    pub name: String,
    pub activity: String,
    pub prediction: Vec<i32>,
    pub ground_truth: Option<Vec<i32>>,
    /// The plan's mass on the predicted action, per frame.
    pub confidence: Vec<f32>,
    /// The ASOT objective at the plan the prediction comes from (evaluation settings): a
    /// label-free signal, lower is a better fit.
    pub ot_objective: Option<f64>,
}

/// Metrics of a run (when the videos have ground truth).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scores {
    pub activity: Metrics,
    pub video: Metrics,
    pub per_video: Vec<Metrics>,
}

/// Time per stage.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageTime {
    pub stage: String,
    pub seconds: f64,
    pub calls: u64,
}

/// A trained model and how training went.
#[derive(Debug)]
pub struct Trained {
    pub params: ParamSet,
    pub curve: Vec<CurvePoint>,
    pub profile: Vec<StageTime>,
    pub seconds: f64,
}

/// A stage graph holding the videos.
#[derive(Debug)]
pub struct Session {
    pub graph: StageGraph,
    pub entities: Vec<Entity>,
    cfg: TrainConfig,
}

impl Session {
    /// Builds the graph of `cfg.mode` and spawns one entity per video.
    pub fn new(
        cfg: &TrainConfig,
        videos: &[&Video],
        params: ParamSet,
        sampling_seed: u64,
        customize: &mut dyn FnMut(&mut StageGraph),
    ) -> Result<Self> {
        let mut graph = graphs::build(&cfg.mode, &cfg.without)?;
        customize(&mut graph);
        graph.initialize().map_err(|e| anyhow!("{e}"))?;
        let w = &mut graph.world;
        w.insert_resource(ModelConfig {
            actions: cfg.actions,
            widths: cfg.mlp.clone(),
            temperature: cfg.temperature,
            rho: cfg.rho,
            standardise: cfg.standardise,
            ot_train: cfg.ot(true),
            ot_eval: cfg.ot(false),
            clot: cfg.clot(),
            eval_seed: derive_seeds(cfg.seed)[4],
        });
        w.insert_resource(RunRng(ChaCha8Rng::seed_from_u64(sampling_seed)));
        w.insert_resource(Grads(params.zeros_like()));
        w.insert_resource(Adam::new(
            AdamConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..AdamConfig::default()
            },
            &params,
        ));
        w.insert_resource(Params(params));
        w.insert_resource(LossValue::default());
        w.insert_resource(Batch {
            videos: Vec::new(),
            sampling: Sampling::Full,
            train: false,
        });
        let entities = videos
            .iter()
            .enumerate()
            .map(|(i, v)| {
                w.spawn((
                    VideoIndex(i),
                    VideoId {
                        name: v.name.as_str().into(),
                        activity: v.activity.as_str().into(),
                    },
                    v.features.clone(),
                ))
                .id()
            })
            .collect();
        Ok(Session {
            graph,
            entities,
            cfg: cfg.clone(),
        })
    }

    fn set_batch(&mut self, idx: &[usize], sampling: Sampling, train: bool) {
        let videos = idx.iter().map(|&i| self.entities[i]).collect();
        self.graph.world.insert_resource(Batch {
            videos,
            sampling,
            train,
        });
    }

    fn params(&self) -> &ParamSet {
        &self.graph.world.resource::<Params>().0
    }

    /// k-means++ on normalize(MLP(X)) of one pass of training crops (padded rows included),
    /// in dataset order; sets A.
    fn init_actions(&mut self, seed: u64) -> Result<()> {
        let (k, d) = (self.cfg.actions, *self.cfg.mlp.last().unwrap_or(&0));
        let mut rows = Vec::new();
        let n_videos = self.entities.len();
        for chunk in (0..n_videos)
            .collect::<Vec<_>>()
            .chunks(self.cfg.batch_videos)
        {
            self.set_batch(chunk, Sampling::Train(self.cfg.sampled_frames), false);
            self.graph
                .forward_until(Phase::Encode)
                .map_err(|e| anyhow!("{e}"))?;
            for &i in chunk {
                let f = self
                    .graph
                    .world
                    .get::<FrameEmbeddings>(self.entities[i])
                    .ok_or_else(|| anyhow!("no embeddings after encode"))?;
                rows.extend_from_slice(f.as_slice());
            }
        }
        let km = kmeans(&rows, d, k, self.cfg.kmeans_iters, seed).ok_or_else(|| {
            anyhow!(
                "k-means needs at least K = {k} embedded frames, the training crops have {}",
                rows.len() / d.max(1)
            )
        })?;
        let mut params = self.graph.world.resource_mut::<Params>();
        match params.0.get_mut(ACTIONS) {
            Some(a) if a.len() == km.centroids.len() => a.copy_from_slice(&km.centroids),
            _ => bail!("the model has no {k}×{d} `{ACTIONS}` tensor for the k-means centres"),
        }
        Ok(())
    }

    /// Activity-level MoF of the validation crops (evenly spaced frames, eval settings).
    fn validate(&mut self, videos: &[&Video]) -> Result<Option<f64>> {
        let mut pairs = Vec::new();
        // over the videos with ground truth
        for (i, video) in videos
            .iter()
            .enumerate()
            .filter(|(_, v)| v.labels.is_some())
        {
            self.set_batch(&[i], Sampling::Validation(self.cfg.sampled_frames), false);
            self.graph.forward().map_err(|e| anyhow!("{e}"))?;
            let e = self.entities[i];
            let (pred, input) = (
                self.graph.world.get::<Prediction>(e),
                self.graph.world.get::<Input>(e),
            );
            let (Some(pred), Some(input), Some(gt)) = (pred, input, &video.labels) else {
                bail!("validation produced no prediction");
            };
            let frames = input.frames.as_slice();
            let g: Vec<i32> = frames[..pred.labels.len()]
                .iter()
                .map(|&f| gt.as_slice()[f as usize])
                .collect();
            pairs.push((pred.labels.as_slice().to_vec(), g));
        }
        if pairs.is_empty() {
            return Ok(None);
        }
        let refs: Vec<(&[i32], &[i32])> = pairs.iter().map(|(p, g)| (&p[..], &g[..])).collect();
        Ok(Some(
            activity_level(&refs, self.cfg.exclude, self.cfg.f1_seed)?.mof,
        ))
    }

    /// Trains for `cfg.epochs`; `bar` (length epochs × batches) shows the loss.
    pub fn train(
        &mut self,
        videos: &[&Video],
        shuffle_seed: u64,
        bar: &ProgressBar,
    ) -> Result<Vec<CurvePoint>> {
        let mut shuffle = ChaCha8Rng::seed_from_u64(shuffle_seed);
        let mut order: Vec<usize> = (0..self.entities.len()).collect();
        let mut curve = Vec::new();
        let mut step = 0u64;
        for epoch in 0..self.cfg.epochs {
            order.shuffle(&mut shuffle);
            let batches: Vec<Vec<usize>> = order
                .chunks(self.cfg.batch_videos)
                .map(|c| c.to_vec())
                .collect();
            for (b, chunk) in batches.iter().enumerate() {
                self.set_batch(chunk, Sampling::Train(self.cfg.sampled_frames), true);
                self.graph.world.insert_resource(LossValue::default());
                let g = &mut self.graph;
                g.forward()
                    .and_then(|_| g.backward())
                    .and_then(|_| g.step())
                    .map_err(|e| anyhow!("{e}"))
                    .with_context(|| format!("epoch {epoch}, batch {b}"))?;
                step += 1;
                let lv = self.graph.world.resource::<LossValue>();
                let loss = lv.total;
                curve.push(CurvePoint {
                    epoch,
                    batch: b,
                    step,
                    loss,
                    loss_frames: lv.term("loss").unwrap_or(f64::NAN),
                    loss_segments: lv.term("loss-segments"),
                    loss_refined: lv.term("loss-refined"),
                    val_mof: None,
                });
                bar.set_message(format!(
                    "epoch {}/{} loss {loss:.4}",
                    epoch + 1,
                    self.cfg.epochs
                ));
                bar.inc(1);
            }
            if self.cfg.val_every == 0 || (epoch + 1) % self.cfg.val_every != 0 {
                continue;
            }
            let t = Instant::now();
            let val = self.validate(videos)?;
            let dt = t.elapsed();
            self.graph.world.resource::<Profile>().add("validation", dt);
            if let Some(last) = curve.last_mut() {
                last.val_mof = val;
            }
        }
        Ok(curve)
    }

    /// Runs every video alone at full length with the eval settings.
    pub fn evaluate(&mut self, videos: &[&Video]) -> Result<Vec<VideoResult>> {
        let mut out = Vec::with_capacity(videos.len());
        for (i, v) in videos.iter().enumerate() {
            self.set_batch(&[i], Sampling::Full, false);
            self.graph
                .forward()
                .map_err(|e| anyhow!("{e}"))
                .with_context(|| format!("evaluating video {}", v.name))?;
            let e = self.entities[i];
            let Some(pred) = self.graph.world.get::<Prediction>(e) else {
                bail!("video {}: the graph wrote no prediction", v.name);
            };
            let (prediction, confidence) =
                (pred.labels.as_slice().to_vec(), pred.confidence.clone());
            let ot_objective = self.graph.world.get::<OtObjective>(e).map(|o| o.value);
            out.push(VideoResult {
                name: v.name.clone(),
                activity: v.activity.clone(),
                prediction,
                ground_truth: v.labels.as_ref().map(|l| l.as_slice().to_vec()),
                confidence,
                ot_objective,
            });
        }
        Ok(out)
    }

    /// Time per stage so far.
    pub fn profile(&self) -> Vec<StageTime> {
        self.graph
            .world
            .resource::<Profile>()
            .totals()
            .into_iter()
            .map(|(s, d, c)| StageTime {
                stage: s.to_string(),
                seconds: d.as_secs_f64(),
                calls: c,
            })
            .collect()
    }

    /// The current parameters.
    pub fn parameters(&self) -> ParamSet {
        self.params().clone()
    }
}

/// Fresh parameters for `cfg`: the MLP, A (zeros until k-means sets it), then — in the clot graph —
/// dispatch's α, β and the decoder, drawn from one RNG in that order.
pub fn init_model(cfg: &TrainConfig, seed: u64) -> ParamSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut params = ParamSet::default();
    init_params(&mut params, &cfg.mlp, &mut rng);
    let d = cfg.mlp.last().copied().unwrap_or(0);
    // A: set by k-means on the untrained embeddings before training
    params.push(ACTIONS, vec![cfg.actions, d], vec![0.0; cfg.actions * d]);
    let has = |s: &str| cfg.mode == "clot" && !cfg.without.iter().any(|w| w == s);
    if has("dispatch") {
        clot_stages::dispatch::init_params(&mut params);
    }
    if has("decoder") {
        clot_stages::decode::init_params(&mut params, &cfg.clot().decoder_shape(d), &mut rng);
    }
    params
}

/// The seeds a run derives from its one seed: (MLP init, sampling, shuffling, k-means,
/// evaluation).
pub fn derive_seeds(seed: u64) -> [u64; 5] {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    [r.random(), r.random(), r.random(), r.random(), r.random()]
}

/// Checks the settings and the videos against each other before any work: the ranges, D, and K
/// against each video's length (an action needs frames to be found in).
pub fn check_videos(cfg: &TrainConfig, videos: &[&Video]) -> Result<()> {
    let Some(first) = videos.first() else {
        bail!("no videos to train or evaluate on");
    };
    check_lengths(
        cfg,
        first.features.cols(),
        videos.iter().map(|v| (v.name.as_str(), v.frames())),
    )
}

/// [`check_videos`] from the feature dimension and each video's (name, frames).
pub fn check_lengths<'a>(
    cfg: &TrainConfig,
    dim: usize,
    mut videos: impl Iterator<Item = (&'a str, usize)>,
) -> Result<()> {
    cfg.validate(dim)?;
    if let Some((name, frames)) = videos.find(|(_, n)| *n < cfg.actions) {
        bail!(
            "K = {} actions is more than video `{name}` has frames ({frames}): pass a smaller \
             --actions, or leave the video out",
            cfg.actions
        );
    }
    Ok(())
}

/// Trains a model on `videos` and evaluates it. Returns the trained model, the evaluation and
/// the evaluation's seconds.
pub fn fit(
    cfg: &TrainConfig,
    videos: &[&Video],
    bar: &ProgressBar,
) -> Result<(Trained, Vec<VideoResult>, f64)> {
    fit_with(cfg, videos, bar, |_| {})
}

/// [`fit`] with user stages: `customize` receives the mode's graph before it is initialised, e.g.
/// `|g| { g.add_stage(MyStage); }`.
pub fn fit_with(
    cfg: &TrainConfig,
    videos: &[&Video],
    bar: &ProgressBar,
    mut customize: impl FnMut(&mut StageGraph),
) -> Result<(Trained, Vec<VideoResult>, f64)> {
    check_videos(cfg, videos)?;
    let [init_seed, sample_seed, shuffle_seed, kmeans_seed, _] = derive_seeds(cfg.seed);
    let params = init_model(cfg, init_seed);
    let start = Instant::now();
    let mut s = Session::new(cfg, videos, params, sample_seed, &mut customize)?;
    s.init_actions(kmeans_seed)
        .context("initialising the action embeddings")?;
    let curve = s.train(videos, shuffle_seed, bar)?;
    let seconds = start.elapsed().as_secs_f64();
    let t = Instant::now();
    let results = s.evaluate(videos)?;
    let eval_s = t.elapsed().as_secs_f64();
    let trained = Trained {
        params: s.parameters(),
        curve,
        profile: s.profile(),
        seconds,
    };
    Ok((trained, results, eval_s))
}

/// Evaluates given parameters (a checkpoint) on `videos`.
pub fn evaluate(
    cfg: &TrainConfig,
    params: ParamSet,
    videos: &[&Video],
) -> Result<Vec<VideoResult>> {
    check_videos(cfg, videos)?;
    let [_, sample_seed, ..] = derive_seeds(cfg.seed);
    let mut s = Session::new(cfg, videos, params, sample_seed, &mut |_| {})?;
    s.evaluate(videos)
}

/// Activity- and video-level metrics over the results that have ground truth (`None` when none
/// has); `per_video` follows those results in order.
pub fn score(
    results: &[VideoResult],
    exclude: Option<i32>,
    f1_seed: u64,
) -> Result<Option<Scores>> {
    let pairs: Vec<(&[i32], &[i32])> = results
        .iter()
        .filter_map(|r| Some((r.prediction.as_slice(), r.ground_truth.as_ref()?.as_slice())))
        .collect();
    if pairs.is_empty() {
        return Ok(None);
    }
    let activity = activity_level(&pairs, exclude, f1_seed)?;
    let (video, per_video) = video_level(&pairs, exclude, f1_seed)?;
    Ok(Some(Scores {
        activity,
        video,
        per_video,
    }))
}
