//! Parameters, gradients and Adam's moments resident on the GPU, and Adam's step there
//! (`optim.wgsl`), beside the CPU reference [`crate::optim`].
//!
//! Contract: a [`GpuParamSet`] holds every tensor of a [`ParamSet`] in one buffer, each at an
//! offset that is a multiple of [`ALIGN`] elements (the gaps hold zeros), so that a kernel binds
//! one tensor as a [`GpuMat`] and Adam updates the whole set in one dispatch. Gradients are a
//! second set of the same layout ([`GpuParamSet::zeros_like`]); backward kernels accumulate into
//! its tensors. [`GpuAdam::step`] is `torch.optim.Adam` as [`Adam::step`] computes it (the
//! bias corrections in f64 on the CPU), and zeroes the gradients as the CPU stage does.
//!
//! Tolerance: WGSL's `sqrt` and division are not correctly rounded everywhere, so parameters
//! agree to a few ulps per step, not to the bit (`tests/gpu_parity.rs`: 1e-6 relative after
//! three steps). Cost: O(#params) per step, one invocation per value.

use crate::gpu::{Binding, GpuContext, GpuError, Submission};
use crate::linalg_gpu::{ALIGN, GpuMat};
use crate::optim::{Adam, AdamConfig};
use crate::params::ParamSet;

const WORKGROUP: usize = 64;

/// One tensor's place in a [`GpuParamSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    name: String,
    shape: Vec<usize>,
    offset: usize,
    len: usize,
}

/// The tensors of a parameter set in one GPU buffer.
#[derive(Debug, Clone)]
pub struct GpuParamSet {
    slots: Vec<Slot>,
    /// values in the buffer, gaps included
    len: usize,
    pub buf: wgpu::Buffer,
}

impl GpuParamSet {
    /// Uploads `set` (one copy, at the start of a run).
    pub fn upload(ctx: &GpuContext, label: &str, set: &ParamSet) -> Result<GpuParamSet, GpuError> {
        let mut slots = Vec::with_capacity(set.tensors.len());
        let mut len = 0;
        for t in &set.tensors {
            slots.push(Slot {
                name: t.name.clone(),
                shape: t.shape.clone(),
                offset: len,
                len: t.data.len(),
            });
            len += t.data.len().div_ceil(ALIGN).max(1) * ALIGN;
        }
        let mut flat = vec![0f32; len];
        for (slot, t) in slots.iter().zip(&set.tensors) {
            flat[slot.offset..slot.offset + slot.len].copy_from_slice(&t.data);
        }
        Ok(GpuParamSet {
            slots,
            len,
            buf: ctx.upload(label, &flat)?,
        })
    }

    /// A zeroed set of the same layout (gradients, moments).
    pub fn zeros_like(&self, ctx: &GpuContext, label: &str) -> Result<GpuParamSet, GpuError> {
        Ok(GpuParamSet {
            slots: self.slots.clone(),
            len: self.len,
            buf: ctx.scratch(label, self.len)?,
        })
    }

    /// The tensor `name` as a matrix: its first dimension by the product of the others (a
    /// vector is 1×len). `None` when the set has no such tensor.
    pub fn get(&self, name: &str) -> Option<GpuMat> {
        let slot = self.slots.iter().find(|s| s.name == name)?;
        let (rows, cols) = match slot.shape.as_slice() {
            [] => (1, 1),
            [n] => (1, *n),
            [r, rest @ ..] => (*r, rest.iter().product()),
        };
        Some(GpuMat {
            buf: self.buf.clone(),
            offset: slot.offset,
            rows,
            cols,
        })
    }

    /// The whole buffer as one row, gaps included.
    pub fn flat(&self) -> GpuMat {
        GpuMat {
            buf: self.buf.clone(),
            offset: 0,
            rows: 1,
            cols: self.len,
        }
    }

    /// The values of [`GpuParamSet::flat`] read back into a [`ParamSet`] of the original
    /// layout.
    pub fn to_param_set(&self, flat: &[f32]) -> ParamSet {
        let mut set = ParamSet::default();
        for s in &self.slots {
            set.push(
                s.name.clone(),
                s.shape.clone(),
                flat[s.offset..s.offset + s.len].to_vec(),
            );
        }
        set
    }
}

/// `Params` of `optim.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    pad: [u32; 3],
    step: f32,
    bc2_sqrt: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    fpad: [f32; 2],
}

/// Adam's state on the GPU: the moments (layout of the parameters) and the step count.
#[derive(Debug, Clone)]
pub struct GpuAdam {
    pub config: AdamConfig,
    pub m: GpuParamSet,
    pub v: GpuParamSet,
    pub t: u32,
}

impl GpuAdam {
    /// The GPU copy of a CPU state whose moments have the layout of `params`.
    pub fn upload(ctx: &GpuContext, adam: &Adam) -> Result<GpuAdam, GpuError> {
        Ok(GpuAdam {
            config: adam.config,
            m: GpuParamSet::upload(ctx, "adam m", &adam.m)?,
            v: GpuParamSet::upload(ctx, "adam v", &adam.v)?,
            t: adam.t,
        })
    }

    /// Records one step on `params` with `grads`, then zeroes `grads`.
    pub fn step(
        &mut self,
        sub: &mut Submission<'_>,
        params: &GpuParamSet,
        grads: &GpuParamSet,
    ) -> Result<(), GpuError> {
        assert!(
            params.slots == grads.slots && params.slots == self.m.slots,
            "adam: parameters, gradients and moments differ in layout"
        );
        let ctx = sub.ctx();
        let len = u32::try_from(params.len)
            .map_err(|_| GpuError::Unsupported(format!("{} parameters", params.len)))?;
        self.t += 1;
        let c = self.config;
        let bc1 = 1.0 - f64::from(c.beta1).powi(self.t as i32);
        let bc2 = 1.0 - f64::from(c.beta2).powi(self.t as i32);
        let uniform = ctx.uniform(
            "adam params",
            &Params {
                len,
                pad: [0; 3],
                step: (f64::from(c.lr) / bc1) as f32,
                bc2_sqrt: bc2.sqrt() as f32,
                weight_decay: c.weight_decay,
                beta1: c.beta1,
                beta2: c.beta2,
                eps: c.eps,
                fpad: [0.0; 2],
            },
        );
        let kernel = ctx.kernel(
            "optim.wgsl",
            include_str!("optim.wgsl"),
            &[
                Binding::Uniform,
                Binding::ReadWrite,
                Binding::ReadWrite,
                Binding::ReadWrite,
                Binding::ReadWrite,
            ],
            &["adam"],
            &[("workgroup_size", WORKGROUP as f64)],
        )?;
        let group = ctx.bind(
            &kernel,
            &[&uniform, &params.buf, &grads.buf, &self.m.buf, &self.v.buf],
        );
        let mut pass = sub
            .encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("adam"),
                timestamp_writes: None,
            });
        ctx.dispatch(&mut pass, &kernel, &group, "adam", params.len as u64);
        Ok(())
    }
}
