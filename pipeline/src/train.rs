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
//! Validation and evaluation run each video as a batch of its own, on copies of the graph side
//! by side (one per thread), which gives the same bits as running them in turn.

use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use bevy_ecs::entity::Entity;
use clot_datasets::Video;
use clot_schemas::{
    F32Matrix, FrameEmbeddings, RefinedFrames, RefinedPlan, SegmentEmbeddings, SegmentPlan,
    TransportPlan, VideoId,
};
use clot_stages::actions::ACTIONS;
use clot_stages::batch::{
    Batch, Input, LossValue, ModelConfig, OtObjective, Prediction, RunRng, VideoIndex,
};
use clot_stages::encode::init_params;
use clot_stages::eval::{F1Rng, Metrics, activity_level, activity_level_with, video_level_with};
use clot_stages::gpu::{Compute, ComputeDevice};
use clot_stages::graph::{Phase, Profile, StageGraph};
use clot_stages::kmeans::kmeans;
use clot_stages::optim::{Adam, AdamConfig};
use clot_stages::params::{Grads, ParamSet, Params};
use clot_stages::record::{DrawLog, Values};
use clot_stages::sample::Sampling;
use indicatif::ProgressBar;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

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
    /// Copies of the graph for validation and evaluation (see [`Session::add_workers`]).
    workers: Vec<Session>,
    /// Videos that did not fit the resident GPU step at full length and ran on the host path
    /// (see [`Session::forward_video`]), each noted once.
    #[cfg(feature = "wgpu")]
    host_fallback: Vec<String>,
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
        let compute = Compute::resolve(cfg.device)?;
        let w = &mut graph.world;
        w.insert_resource(ComputeDevice(compute));
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
            workers: Vec::new(),
            #[cfg(feature = "wgpu")]
            host_fallback: Vec::new(),
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

    /// Starts recording every random draw (and each step's losses and parameters) into a
    /// [`DrawLog`]; see [`Session::take_draws`].
    pub fn record_draws(&mut self) {
        // (see fit_recording for the names)
        self.graph.world.insert_resource(DrawLog::default());
    }

    /// The draw log so far (empty when not recording), leaving recording on.
    pub fn take_draws(&mut self) -> DrawLog {
        match self.graph.world.get_resource_mut::<DrawLog>() {
            Some(mut log) => std::mem::take(&mut *log),
            None => DrawLog::default(),
        }
    }

    fn recording(&self) -> bool {
        self.graph.world.contains_resource::<DrawLog>()
    }

    fn log_scope(&mut self, scope: String) {
        if let Some(mut log) = self.graph.world.get_resource_mut::<DrawLog>() {
            log.scope = scope;
        }
    }

    fn log_push(&mut self, name: String, shape: Vec<usize>, values: Values) {
        if let Some(mut log) = self.graph.world.get_resource_mut::<DrawLog>() {
            log.push(name, shape, values);
        }
    }

    /// Records every tensor of `set` as `<prefix>/<name>`.
    fn log_params(&mut self, prefix: &str, set: ParamSet) {
        for t in set.tensors {
            self.log_push(format!("{prefix}/{}", t.name), t.shape, Values::F32(t.data));
        }
    }

    /// Records the batch's sampled frames (`frames/<slot>`, padded rows repeat the last frame),
    /// valid counts and dataset indices under `prefix`, and with `detail` what the forward pass
    /// produced for each video (`fwd/<slot>/<component>`).
    fn log_batch(&mut self, prefix: &str, idx: &[usize], detail: bool) {
        let mut pushes = Vec::new();
        let mut valid = Vec::new();
        let w = &self.graph.world;
        for (slot, &i) in idx.iter().enumerate() {
            let e = self.entities[i];
            if let Some(input) = w.get::<Input>(e) {
                let f: Vec<i64> = input.frames.as_slice().iter().map(|&x| x as i64).collect();
                pushes.push((
                    format!("{prefix}/frames/{slot}"),
                    vec![f.len()],
                    Values::I64(f),
                ));
                valid.push(input.mask.count_valid() as i64);
            }
            if !detail {
                continue;
            }
            let mut matrix = |what: &str, m: Option<&F32Matrix>| {
                if let Some(m) = m {
                    pushes.push((
                        format!("{prefix}/fwd/{slot}/{what}"),
                        vec![m.rows(), m.cols()],
                        Values::F32(m.as_slice().to_vec()),
                    ));
                }
            };
            matrix("frames", w.get::<FrameEmbeddings>(e).map(|c| &**c));
            matrix("plan", w.get::<TransportPlan>(e).map(|c| &**c));
            matrix("segments", w.get::<SegmentEmbeddings>(e).map(|c| &**c));
            matrix("segment_plan", w.get::<SegmentPlan>(e).map(|c| &**c));
            matrix("refined", w.get::<RefinedFrames>(e).map(|c| &**c));
            matrix("refined_plan", w.get::<RefinedPlan>(e).map(|c| &**c));
        }
        let ids = idx.iter().map(|&i| i as i64).collect::<Vec<_>>();
        pushes.push((
            format!("{prefix}/videos"),
            vec![ids.len()],
            Values::I64(ids),
        ));
        pushes.push((
            format!("{prefix}/valid"),
            vec![valid.len()],
            Values::I64(valid),
        ));
        for (n, s, v) in pushes {
            self.log_push(n, s, v);
        }
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
    fn validate(&mut self, videos: &[&Video], epoch: usize) -> Result<Option<f64>> {
        // over the videos with ground truth
        let labelled: Vec<usize> = (0..videos.len())
            .filter(|&i| videos[i].labels.is_some())
            .collect();
        let pairs = self.per_video(&labelled, videos, |s, i| {
            s.set_batch(&[i], Sampling::Validation(s.cfg.sampled_frames), false);
            s.log_scope(format!("val{epoch}/{i}"));
            s.forward_video(&videos[i].name)?;
            let e = s.entities[i];
            let (pred, input) = (
                s.graph.world.get::<Prediction>(e),
                s.graph.world.get::<Input>(e),
            );
            let (Some(pred), Some(input), Some(gt)) = (pred, input, &videos[i].labels) else {
                bail!("validation produced no prediction");
            };
            let frames = input.frames.as_slice();
            let g: Vec<i32> = frames[..pred.labels.len()]
                .iter()
                .map(|&f| gt.as_slice()[f as usize])
                .collect();
            Ok((pred.labels.as_slice().to_vec(), g))
        })?;
        if pairs.is_empty() {
            return Ok(None);
        }
        let refs: Vec<(&[i32], &[i32])> = pairs.iter().map(|(p, g)| (&p[..], &g[..])).collect();
        Ok(Some(
            activity_level(&refs, self.cfg.exclude, self.cfg.f1_seed)?.mof,
        ))
    }

    /// Builds copies of this session's graph (each with `customize`, as the session was) so
    /// that validation and evaluation run videos side by side: one graph per thread of the
    /// current rayon pool, at most one per video. There, every video is a batch of its own and
    /// depends only on the parameters, so the results are the same bits as one graph running
    /// the videos in turn; training keeps to this session's graph. CPU sessions only (a GPU
    /// session keeps one graph on its one queue).
    pub fn add_workers(
        &mut self,
        videos: &[&Video],
        customize: &mut dyn FnMut(&mut StageGraph),
    ) -> Result<()> {
        if !matches!(self.graph.world.resource::<ComputeDevice>().0, Compute::Cpu) {
            return Ok(());
        }
        let extra = rayon::current_num_threads()
            .min(videos.len())
            .saturating_sub(1);
        let params = self.params().clone();
        for _ in 0..extra {
            // sampling seed 0: validation and evaluation draw no frames at random
            let worker = Session::new(&self.cfg, videos, params.clone(), 0, customize)?;
            self.workers.push(worker);
        }
        Ok(())
    }

    /// `run(session, i)` for every video index of `idx`, each on one of this session's graphs
    /// (see [`Session::add_workers`]; in turn on this graph when there are none, or when
    /// recording draws); the results in `idx` order, or the error of the first failing video.
    fn per_video<T: Send>(
        &mut self,
        idx: &[usize],
        videos: &[&Video],
        run: impl Fn(&mut Session, usize) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        if self.workers.is_empty() || self.recording() || idx.len() < 2 {
            return idx.iter().map(|&i| run(self, i)).collect();
        }
        let mut workers = std::mem::take(&mut self.workers);
        let params = self.params().clone();
        for w in &mut workers {
            w.graph.world.insert_resource(Params(params.clone()));
        }
        // longest video first, each to the least loaded graph (the first of equals): the split
        // depends on the lengths only, and no result depends on the split
        let mut order: Vec<usize> = (0..idx.len()).collect();
        order.sort_by_key(|&p| (std::cmp::Reverse(videos[idx[p]].frames()), p));
        let mut load = vec![0usize; workers.len() + 1];
        let mut lists = vec![Vec::new(); workers.len() + 1];
        for p in order {
            let g = (0..load.len()).min_by_key(|&g| (load[g], g)).unwrap_or(0);
            load[g] += videos[idx[p]].frames();
            lists[g].push(p);
        }
        let mut graphs: Vec<&mut Session> = std::iter::once(&mut *self)
            .chain(workers.iter_mut())
            .collect();
        let done: Vec<Vec<(usize, Result<T>)>> = graphs
            .par_iter_mut()
            .zip(lists)
            .map(|(s, list)| list.into_iter().map(|p| (p, run(s, idx[p]))).collect())
            .collect();
        drop(graphs);
        let profile = self.graph.world.resource::<Profile>();
        for w in &workers {
            profile.absorb(w.graph.world.resource::<Profile>());
        }
        self.workers = workers;
        let mut out: Vec<(usize, Result<T>)> = done.into_iter().flatten().collect();
        out.sort_by_key(|(p, _)| *p);
        out.into_iter().map(|(_, r)| r).collect()
    }

    /// On wgpu, moves the model to the GPU when every stage of the graph can run a resident
    /// step there (see `clot_stages::gpu::resident`; the asot graph today). Not while
    /// recording draws: the record reads each stage's outputs on the host. Returns whether the
    /// graph is resident.
    fn go_resident(&mut self) -> Result<bool> {
        if self.recording() {
            return Ok(false);
        }
        #[cfg(feature = "wgpu")]
        return Ok(clot_stages::gpu::resident::make_resident(&mut self.graph)?);
        #[cfg(not(feature = "wgpu"))]
        Ok(false)
    }

    /// The forward pass of one video alone (validation, evaluation). On the resident GPU path, a
    /// video whose length needs a buffer over the device's storage-binding limit (a
    /// [`clot_stages::gpu::GpuError::TooLarge`]) runs again on the host path with the current
    /// parameters: the neural stages on the CPU and the solves on wgpu, which split one long
    /// video into row windows ([`clot_stages::ot::asot_gpu`]). The graph stays resident for the
    /// next video; a note names the video once, and later passes over it go to the host path
    /// without trying the resident step again.
    fn forward_video(&mut self, name: &str) -> Result<()> {
        #[cfg(feature = "wgpu")]
        {
            use clot_stages::gpu::resident::{GpuBatch, GpuModel};
            if !self.graph.world.contains_resource::<GpuModel>() {
                return self.graph.forward().map_err(|e| anyhow!("{e}"));
            }
            if !self.host_fallback.iter().any(|n| n == name) {
                match self.graph.forward() {
                    Err(e) if e.over_limit => {
                        self.host_fallback.push(name.to_string());
                        eprintln!(
                            "note: video {name} does not fit the resident GPU step at full \
                             length ({e}); evaluated on the host path: the neural stages on the \
                             CPU, the solves on wgpu in row windows"
                        );
                    }
                    other => return other.map_err(|e| anyhow!("{e}")),
                }
            }
            self.sync_to_host()?;
            let model = self.graph.world.remove_resource::<GpuModel>();
            self.graph.world.insert_resource(GpuBatch::default());
            let host = self.graph.forward();
            if let Some(model) = model {
                self.graph.world.insert_resource(model);
            }
            host.map_err(|e| anyhow!("{e}"))
        }
        #[cfg(not(feature = "wgpu"))]
        {
            let _ = name;
            self.graph.forward().map_err(|e| anyhow!("{e}"))
        }
    }

    /// Reads a resident model back into the host's parameters (nothing to do otherwise).
    fn sync_to_host(&mut self) -> Result<()> {
        #[cfg(feature = "wgpu")]
        clot_stages::gpu::resident::sync_to_host(&mut self.graph)?;
        Ok(())
    }

    /// Trains for `cfg.epochs`; `bar` (length epochs × batches) shows the loss.
    pub fn train(
        &mut self,
        videos: &[&Video],
        shuffle_seed: u64,
        bar: &ProgressBar,
    ) -> Result<Vec<CurvePoint>> {
        self.go_resident()?;
        let curve = self.train_steps(videos, shuffle_seed, bar);
        self.sync_to_host()?;
        curve
    }

    fn train_steps(
        &mut self,
        videos: &[&Video],
        shuffle_seed: u64,
        bar: &ProgressBar,
    ) -> Result<Vec<CurvePoint>> {
        let mut shuffle = ChaCha8Rng::seed_from_u64(shuffle_seed);
        let mut order: Vec<usize> = (0..self.entities.len()).collect();
        let mut curve = Vec::new();
        let mut step = 0u64;
        let record = self.recording();
        for epoch in 0..self.cfg.epochs {
            order.shuffle(&mut shuffle);
            if record {
                let o = order.iter().map(|&i| i as i64).collect::<Vec<_>>();
                self.log_push(format!("epoch{epoch}/order"), vec![o.len()], Values::I64(o));
            }
            let batches: Vec<Vec<usize>> = order
                .chunks(self.cfg.batch_videos)
                .map(|c| c.to_vec())
                .collect();
            for (b, chunk) in batches.iter().enumerate() {
                self.set_batch(chunk, Sampling::Train(self.cfg.sampled_frames), true);
                self.graph.world.insert_resource(LossValue::default());
                let at = || format!("epoch {epoch}, batch {b}");
                let scope = format!("step{}", step + 1);
                self.log_scope(scope.clone());
                let g = &mut self.graph;
                g.forward()
                    .and_then(|_| g.backward())
                    .map_err(|e| anyhow!("{e}"))
                    .with_context(at)?;
                if record {
                    // the first steps in detail: what each stage produced, and the gradients
                    let detail = step < DETAIL_STEPS;
                    self.log_batch(&scope, chunk, detail);
                    if detail {
                        let grads = self.graph.world.resource::<Grads>().0.clone();
                        self.log_params(&format!("{scope}/grad"), grads);
                    }
                }
                self.graph
                    .step()
                    .map_err(|e| anyhow!("{e}"))
                    .with_context(at)?;
                step += 1;
                if record {
                    let lv = self.graph.world.resource::<LossValue>().clone();
                    let mut terms = vec![("total", lv.total)];
                    terms.extend(lv.terms.iter().copied());
                    for (name, v) in terms {
                        self.log_push(
                            format!("{scope}/loss/{name}"),
                            vec![1],
                            Values::F64(vec![v]),
                        );
                    }
                    let p = self.params().clone();
                    self.log_params(&format!("{scope}/param"), p);
                }
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
            let val = self.validate(videos, epoch)?;
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
        self.go_resident()?;
        let all: Vec<usize> = (0..videos.len()).collect();
        self.per_video(&all, videos, |s, i| {
            let v = videos[i];
            s.set_batch(&[i], Sampling::Full, false);
            s.log_scope(format!("eval/{i}"));
            s.forward_video(&v.name)
                .with_context(|| format!("evaluating video {}", v.name))?;
            let e = s.entities[i];
            let Some(pred) = s.graph.world.get::<Prediction>(e) else {
                bail!("video {}: the graph wrote no prediction", v.name);
            };
            let (prediction, confidence) =
                (pred.labels.as_slice().to_vec(), pred.confidence.clone());
            if s.recording() {
                let p: Vec<i64> = prediction.iter().map(|&x| x as i64).collect();
                s.log_push(format!("eval/{i}/pred"), vec![p.len()], Values::I64(p));
            }
            let ot_objective = s.graph.world.get::<OtObjective>(e).map(|o| o.value);
            Ok(VideoResult {
                name: v.name.clone(),
                activity: v.activity.clone(),
                prediction,
                ground_truth: v.labels.as_ref().map(|l| l.as_slice().to_vec()),
                confidence,
                ot_objective,
            })
        })
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
/// `|g| { g.add_stage(MyStage); }`. It is called once per graph: the training graph, and the
/// copies on which validation and evaluation run videos side by side (one per thread, see
/// [`Session::add_workers`]), so a stage that keeps state across videos sees a share of them.
pub fn fit_with(
    cfg: &TrainConfig,
    videos: &[&Video],
    bar: &ProgressBar,
    customize: impl FnMut(&mut StageGraph),
) -> Result<(Trained, Vec<VideoResult>, f64)> {
    fit_inner(cfg, videos, bar, customize, false).map(|(t, r, s, _)| (t, r, s))
}

/// [`fit`] that also records every random draw of the run, each step's losses and parameters
/// and the first steps' intermediate results: what `clot train --record-draws` writes for the
/// PyTorch peer to replay. Recording changes no result. Names in the [`DrawLog`]:
///
/// ```text
/// init/<param>                      parameters after the k-means initialisation of A
/// epoch<e>/order                    the epoch's video order (dataset indices)
/// step<s>/videos, valid             the batch's videos and valid rows (s = 1, 2, …)
/// step<s>/frames/<slot>             sampled frame indices (padded rows repeat the last)
/// step<s>/swd/<slot>                OT1's SWD directions, P×d
/// step<s>/dropout/<slot>/<l>/<site> the decoder's dropout multipliers (0 or 1/(1−p))
/// step<s>/loss/<term>               total, loss, loss-segments, loss-refined
/// step<s>/param/<param>             parameters after the step
/// step<s>/grad/<param>, fwd/<slot>/<what>   gradients and stage outputs, first DETAIL_STEPS
/// val<e>/<i>/swd/0                  validation's SWD directions (after epoch e, video i)
/// eval/<i>/swd/0, eval/<i>/pred     evaluation's SWD directions and predictions per video
/// ```
pub fn fit_recording(
    cfg: &TrainConfig,
    videos: &[&Video],
    bar: &ProgressBar,
) -> Result<(Trained, Vec<VideoResult>, f64, DrawLog)> {
    fit_inner(cfg, videos, bar, |_| {}, true)
}

/// Steps whose intermediate results and gradients a recording run also records.
pub const DETAIL_STEPS: u64 = 2;

fn fit_inner(
    cfg: &TrainConfig,
    videos: &[&Video],
    bar: &ProgressBar,
    mut customize: impl FnMut(&mut StageGraph),
    record: bool,
) -> Result<(Trained, Vec<VideoResult>, f64, DrawLog)> {
    check_videos(cfg, videos)?;
    let [init_seed, sample_seed, shuffle_seed, kmeans_seed, _] = derive_seeds(cfg.seed);
    let params = init_model(cfg, init_seed);
    let start = Instant::now();
    let mut s = Session::new(cfg, videos, params, sample_seed, &mut customize)?;
    s.add_workers(videos, &mut customize)?;
    s.init_actions(kmeans_seed)
        .context("initialising the action embeddings")?;
    if record {
        s.record_draws();
        let p = s.parameters();
        s.log_params("init", p);
    }
    let curve = s.train(videos, shuffle_seed, bar)?;
    let seconds = start.elapsed().as_secs_f64();
    let t = Instant::now();
    let results = s.evaluate(videos)?;
    let eval_s = t.elapsed().as_secs_f64();
    let draws = s.take_draws();
    let trained = Trained {
        params: s.parameters(),
        curve,
        profile: s.profile(),
        seconds,
    };
    Ok((trained, results, eval_s, draws))
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
    s.add_workers(videos, &mut |_| {})?;
    s.evaluate(videos)
}

/// Activity- and video-level metrics over the results that have ground truth (`None` when none
/// has); `per_video` follows those results in order. The F1 is clot's ChaCha8 stream
/// ([`score_with`] picks another).
pub fn score(
    results: &[VideoResult],
    exclude: Option<i32>,
    f1_seed: u64,
) -> Result<Option<Scores>> {
    score_with(results, exclude, f1_seed, F1Rng::ChaCha8)
}

/// [`score`] with the sampled F1 drawn from `f1_rng`, seeded with `f1_seed`.
pub fn score_with(
    results: &[VideoResult],
    exclude: Option<i32>,
    f1_seed: u64,
    f1_rng: F1Rng,
) -> Result<Option<Scores>> {
    let pairs: Vec<(&[i32], &[i32])> = results
        .iter()
        .filter_map(|r| Some((r.prediction.as_slice(), r.ground_truth.as_ref()?.as_slice())))
        .collect();
    if pairs.is_empty() {
        return Ok(None);
    }
    let activity = activity_level_with(&pairs, exclude, f1_seed, f1_rng)?;
    let (video, per_video) = video_level_with(&pairs, exclude, f1_seed, f1_rng)?;
    Ok(Some(Scores {
        activity,
        video,
        per_video,
    }))
}
