//! The stage framework: one entity per video, stages as systems in public [`Phase`] sets, three
//! schedules per batch ([`Forward`], [`Backward`], [`Step`]).
//!
//! * A [`Stage`] adds systems to one phase of one or more schedules and describes itself with a
//!   [`StageInfo`] (name, phase, reads, writes, devices, differentiable or detached). It never
//!   orders itself against another stage's systems: the phase order does that.
//! * [`Forward`] runs the phases in SPEC §2 order, [`Backward`] runs them mirrored (each
//!   differentiable stage turns output gradients into input and parameter gradients), [`Step`]
//!   runs the optimizer. The OT solves are detached: no backward.
//! * Executors are single-threaded: rayon parallelises inside stages, so two pools never fight
//!   over the cores.
//! * Systems report failures through the [`Failures`] resource (shared access, interior
//!   mutability), which the driver checks after each schedule; nothing panics on user data.
//!
//! Build a graph with [`StageGraph::new`], add stages with [`StageGraph::add_stage`], then
//! [`StageGraph::initialize`] (with [`StageGraph::strict`] first, ambiguous system order is an
//! error).

use std::fmt::Write as _;
use std::sync::Mutex;

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{
    IntoScheduleConfigs, LogLevel, ScheduleBuildSettings, ScheduleLabel, SystemSet,
};
use bevy_ecs::system::ScheduleSystem;

/// The phases of a batch, in forward order (SPEC §2). Backward runs them in reverse.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Sample and standardise the batch's frames.
    Load,
    /// X → E (MLP + normalisation).
    Encode,
    /// E → F (feature dispatching).
    Dispatch,
    /// OT1 on frames × actions.
    Solve1,
    /// F → S (parallel decoder).
    Decode,
    /// OT2 on segments × actions.
    Solve2,
    /// F, S → F_R (cross-attention refinement).
    Refine,
    /// OT3 on refined frames × actions.
    Solve3,
    /// The cross-entropies.
    Loss,
    /// The optimizer (Step schedule only).
    Optimize,
    /// Labels from the final plan (evaluation batches).
    Predict,
    /// After the predictions: post-processing and outputs (user stages go here).
    Write,
}

impl Phase {
    /// Every phase in forward order.
    pub const ALL: [Phase; 12] = [
        Phase::Load,
        Phase::Encode,
        Phase::Dispatch,
        Phase::Solve1,
        Phase::Decode,
        Phase::Solve2,
        Phase::Refine,
        Phase::Solve3,
        Phase::Loss,
        Phase::Optimize,
        Phase::Predict,
        Phase::Write,
    ];
}

/// The order of the cross-entropy terms inside [`Phase::Loss`]: frames, segments, refined in the
/// forward pass, the reverse in backward (so sums of gradients have one fixed order).
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossLevel {
    Frames,
    Segments,
    Refined,
}

/// The forward pass of a batch.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct Forward;
/// The backward pass of a batch (phases mirrored).
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct Backward;
/// The optimizer step.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct Step;

/// Where a stage can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Wgpu,
}

/// Whether gradients flow through a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grad {
    /// Has a backward in the Backward schedule.
    Differentiable,
    /// No gradient flows through it (the OT solves, sampling, prediction).
    Detached,
}

/// What a stage is, for `clot explain`, registry tests and provenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageInfo {
    pub name: &'static str,
    pub phase: Phase,
    /// Components and resources read.
    pub reads: &'static [&'static str],
    /// Components and resources written.
    pub writes: &'static [&'static str],
    pub grad: Grad,
    /// One line on what it does.
    pub about: &'static str,
}

impl StageInfo {
    /// The devices this stage has kernels for: the CPU reference everywhere; in a build with the
    /// `wgpu` feature also wgpu for every built-in stage but `load` (sampling) and `predict` (the
    /// argmax of the plan read back), which stay on the host in a resident step.
    pub fn devices(&self) -> &'static [Device] {
        if crate::gpu::WGPU_BUILT
            && matches!(
                self.name,
                "actions"
                    | "encode"
                    | "dispatch"
                    | "ot1"
                    | "decode"
                    | "ot2"
                    | "refine"
                    | "ot3"
                    | "loss"
                    | "loss-segments"
                    | "loss-refined"
                    | "adam"
            )
        {
            &[Device::Cpu, Device::Wgpu]
        } else {
            &[Device::Cpu]
        }
    }
}

/// A stage: adds systems to a phase; describes itself.
pub trait Stage {
    /// What the stage is.
    fn info(&self) -> StageInfo;
    /// Adds the stage's systems (and any resources it owns) to the graph.
    fn build(&self, graph: &mut StageGraph);

    /// Whether the stage takes part in a resident training step on wgpu
    /// ([`crate::gpu::resident`]): it has GPU systems that keep their data on the GPU, or it
    /// reads and writes only what stays on the host there (the sampled `Input`, the final plan
    /// at evaluation, `Prediction`). A graph runs resident only when all its stages do, so the
    /// default, false, keeps a stage that reads embeddings on the CPU working.
    fn resident(&self) -> bool {
        false
    }
}

/// Adds a resident stage's systems to `$phase` of `$schedule`: with the `wgpu` feature its GPU
/// system `$gpu` (run when the graph is resident, [`crate::gpu::on_gpu`]) chained before its CPU
/// system `$cpu` (run otherwise); without the feature, `$cpu` alone. With a trailing
/// `in_set $set`, the systems also go in that set (the loss levels' order).
macro_rules! add_cpu_gpu {
    ($graph:expr, $schedule:expr, $phase:expr, $cpu:expr, $gpu:expr) => {
        add_cpu_gpu!($graph, $schedule, $phase, $cpu, $gpu, in_set $phase)
    };
    ($graph:expr, $schedule:expr, $phase:expr, $cpu:expr, $gpu:expr, in_set $set:expr) => {{
        #[cfg(feature = "wgpu")]
        {
            use bevy_ecs::schedule::IntoScheduleConfigs;
            $graph.add_systems(
                $schedule,
                $phase,
                (
                    $gpu.run_if(crate::gpu::on_gpu),
                    $cpu.run_if(bevy_ecs::prelude::not(crate::gpu::on_gpu)),
                )
                    .chain()
                    .in_set($set),
            )
        }
        #[cfg(not(feature = "wgpu"))]
        {
            use bevy_ecs::schedule::IntoScheduleConfigs;
            $graph.add_systems($schedule, $phase, $cpu.in_set($set))
        }
    }};
}
pub(crate) use add_cpu_gpu;

/// A failure inside a stage, reported by a system.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("stage {stage}: {message}")]
pub struct StageError {
    pub stage: &'static str,
    pub message: String,
    /// The stage needed a GPU buffer over a device limit ([`crate::gpu::GpuError::TooLarge`]):
    /// the work did not fit, and the same work split differently may.
    pub over_limit: bool,
}

/// Failures reported during a schedule run. Systems take `Res<Failures>` (shared access: it never
/// orders or conflicts with anything) and call [`Failures::report`].
#[derive(Resource, Debug, Default)]
pub struct Failures(Mutex<Vec<StageError>>);

impl Failures {
    /// Records a failure. A [`crate::gpu::GpuError::TooLarge`], alone or inside an
    /// [`crate::ot::OtError`], is marked [`StageError::over_limit`].
    pub fn report<M: std::fmt::Display + 'static>(&self, stage: &'static str, message: M) {
        let over_limit = crate::gpu::is_over_limit(&message);
        if let Ok(mut v) = self.0.lock() {
            v.push(StageError {
                stage,
                message: message.to_string(),
                over_limit,
            });
        }
    }

    /// Takes the first failure, clearing the list.
    pub fn take(&self) -> Option<StageError> {
        self.0
            .lock()
            .ok()
            .and_then(|mut v| (!v.is_empty()).then(|| v.remove(0)).inspect(|_| v.clear()))
    }
}

/// Stops the forward pass after this phase when set (a resource; `None` runs every phase).
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardLimit(pub Option<Phase>);

/// Wall time spent in each stage's systems (a resource, shared access like [`Failures`]).
/// A system times itself with `let _span = profile.span("name");`.
#[derive(Resource, Debug, Default)]
pub struct Profile(Mutex<Vec<(&'static str, std::time::Duration, u64)>>);

/// Adds its lifetime to a [`Profile`] entry when dropped.
#[derive(Debug)]
pub struct Span<'a> {
    profile: &'a Profile,
    name: &'static str,
    start: std::time::Instant,
}

impl Drop for Span<'_> {
    fn drop(&mut self) {
        self.profile.add(self.name, self.start.elapsed());
    }
}

impl Profile {
    /// Times the caller's scope under `name`.
    pub fn span(&self, name: &'static str) -> Span<'_> {
        Span {
            profile: self,
            name,
            start: std::time::Instant::now(),
        }
    }

    /// Adds one call of duration `dt` to `name`.
    pub fn add(&self, name: &'static str, dt: std::time::Duration) {
        if let Ok(mut v) = self.0.lock() {
            Self::add_to(&mut v, name, dt, 1);
        }
    }

    /// Adds `calls` calls of total duration `dt` to `name`'s entry of `v` (a new one at the end).
    fn add_to(
        v: &mut Vec<(&'static str, std::time::Duration, u64)>,
        name: &'static str,
        dt: std::time::Duration,
        calls: u64,
    ) {
        match v.iter_mut().find(|(n, ..)| *n == name) {
            Some(e) => {
                e.1 += dt;
                e.2 += calls;
            }
            None => v.push((name, dt, calls)),
        }
    }

    /// Moves `other`'s times and calls into this profile (e.g. those of a copy of the graph).
    pub fn absorb(&self, other: &Profile) {
        let taken = other
            .0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        if let Ok(mut v) = self.0.lock() {
            for (name, dt, calls) in taken {
                Self::add_to(&mut v, name, dt, calls);
            }
        }
    }

    /// (name, total time, calls) per timed name, in first-seen order.
    pub fn totals(&self) -> Vec<(&'static str, std::time::Duration, u64)> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// An assembled stage graph: a `World` holding the three schedules, and the stages' infos.
#[derive(Debug)]
pub struct StageGraph {
    pub world: World,
    stages: Vec<StageInfo>,
    /// [`Stage::resident`] of each stage, in `stages` order.
    resident: Vec<bool>,
}

impl Default for StageGraph {
    fn default() -> Self {
        Self::new()
    }
}

impl StageGraph {
    /// An empty graph: the three schedules with their phase order, single-threaded.
    pub fn new() -> Self {
        let mut world = World::new();
        world.init_resource::<Failures>();
        let mut forward = Schedule::new(Forward);
        let mut backward = Schedule::new(Backward);
        // consecutive phases are ordered: forward as listed, backward mirrored
        for w in Phase::ALL.windows(2) {
            forward.configure_sets(w[0].before(w[1]));
            backward.configure_sets(w[1].before(w[0]));
        }
        forward.configure_sets(
            (LossLevel::Frames, LossLevel::Segments, LossLevel::Refined)
                .chain()
                .in_set(Phase::Loss),
        );
        backward.configure_sets(
            (LossLevel::Refined, LossLevel::Segments, LossLevel::Frames)
                .chain()
                .in_set(Phase::Loss),
        );
        // `ForwardLimit` stops the forward pass after a phase (e.g. embeddings for k-means init)
        for phase in Phase::ALL {
            forward
                .configure_sets(phase.run_if(move |limit: Res<'_, ForwardLimit>| {
                    limit.0.is_none_or(|p| phase <= p)
                }));
        }
        world.init_resource::<ForwardLimit>();
        world.init_resource::<Profile>();
        let step = Schedule::new(Step);
        for mut s in [forward, backward, step] {
            s.set_executor(bevy_ecs::schedule::SingleThreadedExecutor::new());
            world.add_schedule(s);
        }
        StageGraph {
            world,
            stages: Vec::new(),
            resident: Vec::new(),
        }
    }

    /// Adds a stage. Adding a stage with the same name twice is ignored.
    pub fn add_stage(&mut self, stage: impl Stage) -> &mut Self {
        let info = stage.info();
        if self.stages.iter().any(|s| s.name == info.name) {
            return self;
        }
        stage.build(self);
        self.stages.push(info);
        self.resident.push(stage.resident());
        self
    }

    /// Whether every stage takes part in a resident training step on wgpu ([`Stage::resident`]).
    pub fn resident_on_gpu(&self) -> bool {
        crate::gpu::WGPU_BUILT && !self.resident.is_empty() && self.resident.iter().all(|&r| r)
    }

    /// Adds `systems` to `phase` of `schedule`.
    pub fn add_systems<M>(
        &mut self,
        schedule: impl ScheduleLabel,
        phase: Phase,
        systems: impl IntoScheduleConfigs<ScheduleSystem, M>,
    ) -> &mut Self {
        self.world
            .resource_mut::<Schedules>()
            .add_systems(schedule, systems.in_set(phase));
        self
    }

    /// The stages in the order they were added.
    pub fn stages(&self) -> &[StageInfo] {
        &self.stages
    }

    /// Whether a stage of this name is in the graph.
    pub fn has(&self, name: &str) -> bool {
        self.stages.iter().any(|s| s.name == name)
    }

    /// Makes ambiguous system order (two systems with conflicting access and no order) an error
    /// at [`StageGraph::initialize`].
    pub fn strict(&mut self) -> &mut Self {
        let mut schedules = self.world.resource_mut::<Schedules>();
        for label in [Forward.intern(), Backward.intern(), Step.intern()] {
            if let Some(s) = schedules.get_mut(label) {
                s.set_build_settings(ScheduleBuildSettings {
                    ambiguity_detection: LogLevel::Error,
                    ..ScheduleBuildSettings::default()
                });
            }
        }
        self
    }

    /// Builds the three schedules; reports ambiguities (in strict mode) and cycles.
    pub fn initialize(&mut self) -> Result<(), StageError> {
        for label in [Forward.intern(), Backward.intern(), Step.intern()] {
            // render the error with system names while the schedule is at hand
            let res = self.world.schedule_scope(label, |world, s| {
                s.initialize(world)
                    .map(|_| ())
                    .map_err(|e| e.to_string(s.graph(), world))
            });
            res.map_err(|e| StageError {
                stage: "graph",
                message: format!("schedule {label:?}: {e}"),
                over_limit: false,
            })?;
        }
        Ok(())
    }

    fn run(&mut self, label: impl ScheduleLabel) -> Result<(), StageError> {
        self.world.run_schedule(label);
        match self.world.resource::<Failures>().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs the forward pass of the current batch.
    pub fn forward(&mut self) -> Result<(), StageError> {
        self.run(Forward)
    }

    /// Runs the forward pass up to and including `phase`.
    pub fn forward_until(&mut self, phase: Phase) -> Result<(), StageError> {
        self.world.insert_resource(ForwardLimit(Some(phase)));
        let r = self.run(Forward);
        self.world.insert_resource(ForwardLimit(None));
        r
    }

    /// Runs the backward pass of the current batch.
    pub fn backward(&mut self) -> Result<(), StageError> {
        self.run(Backward)
    }

    /// Runs the optimizer step.
    pub fn step(&mut self) -> Result<(), StageError> {
        self.run(Step)
    }

    /// A table of the graph: phases in forward order, each stage with its reads and writes.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for phase in Phase::ALL {
            for s in self.stages.iter().filter(|s| s.phase == phase) {
                let grad = match s.grad {
                    Grad::Differentiable => "differentiable",
                    Grad::Detached => "detached",
                };
                let _ = writeln!(
                    out,
                    "{:<9} {:<14} {:<15} reads: {}\n{:<40}writes: {}\n{:<40}{}",
                    format!("{phase:?}"),
                    s.name,
                    grad,
                    s.reads.join(", "),
                    "",
                    s.writes.join(", "),
                    "",
                    s.about
                );
            }
        }
        if crate::gpu::WGPU_BUILT {
            let host: Vec<&str> = self
                .stages
                .iter()
                .zip(&self.resident)
                .filter(|(_, r)| !**r)
                .map(|(s, _)| s.name)
                .collect();
            if host.is_empty() {
                out.push_str(
                    "\non wgpu: a resident training step (the model and the batch stay on the \
                     GPU; load samples on the host, predict reads the final plan back)\n",
                );
            } else {
                let _ = writeln!(
                    out,
                    "\non wgpu: the OT solves run on the GPU, the other stages on the CPU (no \
                     resident training step: {} {} no GPU kernels yet)",
                    host.join(", "),
                    if host.len() == 1 { "has" } else { "have" }
                );
            }
        }
        out
    }
}
