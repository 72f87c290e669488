//! The draw log: every random draw of a run, recorded where it is made, so that another
//! implementation (the PyTorch peer) can replay the run with the same randomness and the two
//! trajectories can be compared step by step (`clot train --record-draws`).
//!
//! A [`DrawLog`] resource is present only when a run records; stages that draw (the decoder's
//! dropout masks, OT1's SWD directions) push what they drew under the log's current scope, which
//! the driver sets before each pass (`step12`, `eval/3`, …). The driver records the rest itself:
//! the initial parameters, each epoch's video order, each batch's sampled frames, and, for the
//! comparison, each step's losses and parameters. Names are `/`-separated; the pipeline writes
//! the log as one safetensors file. Recording never changes what a run computes.

use bevy_ecs::prelude::*;

/// The values of one recorded tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

/// One recorded tensor: a name, a row-major shape and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Values,
}

/// The run's record of draws (a resource, present only when recording).
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct DrawLog {
    /// Prefix of the names pushed by stages, set by the driver before each pass.
    pub scope: String,
    pub tensors: Vec<Recorded>,
}

impl DrawLog {
    /// Records `values` (shape `shape`) as `name`, verbatim.
    pub fn push(&mut self, name: impl Into<String>, shape: Vec<usize>, values: Values) {
        self.tensors.push(Recorded {
            name: name.into(),
            shape,
            values,
        });
    }

    /// Records f32 values as `<scope>/<name>`.
    pub fn scoped_f32(&mut self, name: &str, shape: Vec<usize>, values: Vec<f32>) {
        let name = format!("{}/{name}", self.scope);
        self.push(name, shape, Values::F32(values));
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Recorded> {
        self.tensors.iter().find(|t| t.name == name)
    }
}
