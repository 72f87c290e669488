//! Model parameters, their gradients and the optimizer state: named f32 tensors in a fixed order.
//!
//! Names follow the PyTorch state dict of the reference model (`mlp.0.weight`, `mlp.0.bias`,
//! `mlp.2.weight`, …, `clusters`), so a checkpoint written from a [`ParamSet`] loads into it.
//! Stages look tensors up by name once and then index them; nothing here allocates per step.

use bevy_ecs::resource::Resource;

/// One named tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// An ordered set of named tensors.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParamSet {
    pub tensors: Vec<Tensor>,
}

impl ParamSet {
    /// Adds a tensor; returns its index.
    pub fn push(&mut self, name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> usize {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        self.tensors.push(Tensor {
            name: name.into(),
            shape,
            data,
        });
        self.tensors.len() - 1
    }

    /// The index of tensor `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.tensors.iter().position(|t| t.name == name)
    }

    /// The values of tensor `name`.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.index(name).map(|i| self.tensors[i].data.as_slice())
    }

    /// The values of tensor `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        self.index(name)
            .map(move |i| self.tensors[i].data.as_mut_slice())
    }

    /// A set of the same names and shapes, all zero.
    pub fn zeros_like(&self) -> ParamSet {
        ParamSet {
            tensors: self
                .tensors
                .iter()
                .map(|t| Tensor {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    data: vec![0.0; t.data.len()],
                })
                .collect(),
        }
    }

    /// Sets every value to 0.
    pub fn zero(&mut self) {
        self.tensors.iter_mut().for_each(|t| t.data.fill(0.0));
    }

    /// The number of scalar parameters.
    pub fn len(&self) -> usize {
        self.tensors.iter().map(|t| t.data.len()).sum()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The model's parameters (a resource).
#[derive(Resource, Debug, Clone, PartialEq, Default)]
pub struct Params(pub ParamSet);

/// Gradients of the loss, same names and shapes as [`Params`] (a resource; zeroed by the
/// optimizer after each step).
#[derive(Resource, Debug, Clone, PartialEq, Default)]
pub struct Grads(pub ParamSet);
