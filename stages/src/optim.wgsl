// Adam on the GPU (optim_gpu.rs dispatches it; optim.rs is the CPU reference), one invocation per
// parameter over the flat, concatenated parameter set:
// g' = g + wd·θ; m = β₁m + (1−β₁)g'; v = β₂v + (1−β₂)g'²; θ −= step · m / (√v / √(1−β₂ᵗ) + ε),
// with step = lr / (1−β₁ᵗ) computed on the CPU in f64, as optim.rs does; then g = 0.

override workgroup_size: u32 = 64u;

struct Params {
    len: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
    step: f32,
    bc2_sqrt: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    _f0: f32,
    _f1: f32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> theta: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(workgroup_size)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * workgroup_size + lid;
    if i >= P.len {
        return;
    }
    let p = theta[i];
    let g = grad[i] + P.weight_decay * p;
    let mi = P.beta1 * m[i] + (1.0 - P.beta1) * g;
    let vi = P.beta2 * v[i] + (1.0 - P.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) / P.bc2_sqrt + P.eps;
    theta[i] = p - P.step * mi / denom;
    grad[i] = 0.0;
}
