// The cosine cost and the temporal prior on the GPU (cost_gpu.rs dispatches it; cost.rs is the
// CPU reference): C[v, i, j] = 1 − ⟨F[v, i, :], A[j, :]⟩ + ρ·|i/N − j/K| for a batch of B videos
// padded to N rows of d-dimensional embeddings. One invocation per cell; the dot product runs
// serially over d, so the result does not depend on scheduling.

override workgroup_size: u32 = 64u;

struct Params {
    b: u32,
    n: u32,
    k: u32,
    d: u32,
    rho: f32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
// B×N×d
@group(0) @binding(1) var<storage, read> f: array<f32>;
// K×d
@group(0) @binding(2) var<storage, read> a: array<f32>;
// B×N×K
@group(0) @binding(3) var<storage, read_write> cost: array<f32>;

@compute @workgroup_size(workgroup_size)
fn cosine_prior(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let idx = (wid.y * nwg.x + wid.x) * workgroup_size + lid;
    if idx >= P.b * P.n * P.k {
        return;
    }
    let j = idx % P.k;
    let row = idx / P.k;
    let i = row % P.n;
    var dot = 0.0;
    for (var x = 0u; x < P.d; x++) {
        dot += f[row * P.d + x] * a[j * P.d + x];
    }
    var c = 1.0 - dot;
    if P.rho != 0.0 {
        c += P.rho * abs(f32(i) / f32(P.n) - f32(j) / f32(P.k));
    }
    cost[idx] = c;
}
