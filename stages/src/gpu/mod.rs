//! Where kernels run: the device choice, the GPU context and what every WGSL kernel shares.
//!
//! * [`DeviceChoice`] (`--device cpu|wgpu|auto`) is always compiled, so that a CPU-only build can
//!   say why it cannot take `wgpu` instead of rejecting the flag.
//! * [`SHADERS`] lists every WGSL source of the crate (each sits beside the Rust that dispatches
//!   it, e.g. `ot/asot.wgsl`), embedded at compile time. naga parses and validates all of them in
//!   the ordinary CPU test run (`tests/shaders.rs`), with or without an adapter.
//! * Behind the `wgpu` feature: [`GpuContext`] (adapter, device, queue, pipeline cache), opened
//!   once per process by [`GpuContext::shared`], and the buffer and dispatch helpers the kernels
//!   use.
//!
//! The CPU path is the reference. A GPU kernel states its tolerance against it in its docs, and
//! every reduction on the GPU runs in a fixed order, so that a GPU run is reproducible.

use std::fmt;
use std::str::FromStr;

#[cfg(feature = "wgpu")]
mod context;
#[cfg(feature = "wgpu")]
pub mod resident;
#[cfg(feature = "wgpu")]
pub use context::{Binding, GpuContext, Kernel, MAX_BINDING_VAR, Submission};

/// Every WGSL source of the crate, by the path of its file under `stages/src`.
pub const SHADERS: &[(&str, &str)] = &[
    ("linalg.wgsl", include_str!("../linalg.wgsl")),
    ("optim.wgsl", include_str!("../optim.wgsl")),
    ("ot/asot.wgsl", include_str!("../ot/asot.wgsl")),
    ("ot/cost.wgsl", include_str!("../ot/cost.wgsl")),
    ("ot/swd.wgsl", include_str!("../ot/swd.wgsl")),
];

/// Where a command runs its kernels.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The CPU reference (the default).
    #[default]
    Cpu,
    /// A wgpu adapter; an error when there is none.
    Wgpu,
    /// A real GPU when one is there (not a software adapter such as lavapipe), else the CPU.
    Auto,
}

impl DeviceChoice {
    pub const NAMES: [&'static str; 3] = ["cpu", "wgpu", "auto"];
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::Auto => "auto",
        })
    }
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "wgpu" => Ok(DeviceChoice::Wgpu),
            "auto" => Ok(DeviceChoice::Auto),
            other => Err(format!(
                "unknown device {other:?}: expected cpu, wgpu or auto"
            )),
        }
    }
}

/// The resolved device of a stage graph (a resource; absent means the CPU). With `wgpu`, the OT
/// stages build their cosine costs and solve on the GPU (OT1's SWD term stays on the CPU); the
/// other stages run on the CPU until their kernels land.
#[derive(bevy_ecs::resource::Resource, Debug, Clone)]
pub struct ComputeDevice(pub Compute);

/// A [`DeviceChoice`] resolved to what runs.
#[derive(Debug, Clone)]
pub enum Compute {
    Cpu,
    #[cfg(feature = "wgpu")]
    Wgpu(std::sync::Arc<GpuContext>),
}

impl Compute {
    /// `cpu` is the CPU; `wgpu` the process's GPU context (an error without one); `auto` a real
    /// GPU when there is one, else the CPU (a software adapter is never taken automatically).
    pub fn resolve(choice: DeviceChoice) -> Result<Compute, GpuError> {
        match choice {
            DeviceChoice::Cpu => Ok(Compute::Cpu),
            #[cfg(feature = "wgpu")]
            DeviceChoice::Wgpu => Ok(Compute::Wgpu(GpuContext::shared()?)),
            #[cfg(not(feature = "wgpu"))]
            DeviceChoice::Wgpu => Err(GpuError::NotBuilt),
            #[cfg(feature = "wgpu")]
            DeviceChoice::Auto => Ok(match GpuContext::shared() {
                Ok(ctx) if !ctx.is_software() => Compute::Wgpu(ctx),
                _ => Compute::Cpu,
            }),
            #[cfg(not(feature = "wgpu"))]
            DeviceChoice::Auto => Ok(Compute::Cpu),
        }
    }

    /// `cpu` or `wgpu`, as the Parquet metadata records it.
    pub fn name(&self) -> &'static str {
        match self {
            Compute::Cpu => "cpu",
            #[cfg(feature = "wgpu")]
            Compute::Wgpu(_) => "wgpu",
        }
    }

    /// The adapter in words (`cpu` for the CPU).
    pub fn adapter(&self) -> String {
        match self {
            Compute::Cpu => "cpu".into(),
            #[cfg(feature = "wgpu")]
            Compute::Wgpu(ctx) => ctx.describe(),
        }
    }
}

/// Run condition: the graph runs the resident GPU step ([`resident::GpuModel`] exists). The
/// resident stages give their GPU systems this condition and their CPU systems its negation.
#[cfg(feature = "wgpu")]
pub fn on_gpu(model: Option<bevy_ecs::prelude::Res<'_, resident::GpuModel>>) -> bool {
    model.is_some()
}

/// Whether `error` is a [`GpuError::TooLarge`], alone or as the cause of an
/// [`crate::ot::OtError`]: work that did not fit a device limit as it was laid out, which the
/// caller may lay out again (the resident evaluation of one long video does, see
/// `clot_pipeline::train::Session::forward_video`).
pub fn is_over_limit(error: &dyn std::any::Any) -> bool {
    let gpu = error.downcast_ref::<GpuError>().or_else(|| {
        error
            .downcast_ref::<crate::ot::OtError>()
            .and_then(|e| match e {
                crate::ot::OtError::Gpu(g) => Some(g),
                _ => None,
            })
    });
    matches!(gpu, Some(GpuError::TooLarge { .. }))
}

/// Whether this build has the wgpu kernels.
pub const WGPU_BUILT: bool = cfg!(feature = "wgpu");

/// Why a GPU could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// The binary was built without the `wgpu` feature.
    #[error(
        "this build of clot has no GPU kernels (built without the `wgpu` feature); rebuild with \
         default features or use --device cpu"
    )]
    NotBuilt,
    /// No adapter answered.
    #[error(
        "no wgpu adapter found ({0}); install a Vulkan driver (on a machine without a GPU, Mesa's \
         software Vulkan: apt-get install mesa-vulkan-drivers) or use --device cpu"
    )]
    NoAdapter(String),
    /// The adapter refused to open a device.
    #[error("the wgpu adapter {adapter} refused a device: {why}")]
    RequestDevice { adapter: String, why: String },
    /// A buffer would exceed a device limit and the work cannot be split further.
    #[error(
        "{what} needs a GPU buffer of {bytes} bytes; {adapter} allows {limit} bytes per storage \
         binding: split the input into smaller batches or use --device cpu"
    )]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
        adapter: String,
    },
    /// A setting the GPU kernel does not implement (yet); the CPU path has it.
    #[error("{0} is not implemented on the GPU; use --device cpu")]
    Unsupported(String),
    /// The device reported a validation or out-of-memory error, or was lost.
    #[error("GPU error on {adapter}: {why}")]
    Device { adapter: String, why: String },
}
