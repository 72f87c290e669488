// The dense kernels of the differentiable stages on the GPU (linalg_gpu.rs dispatches them;
// linalg.rs and the stages' kernel.rs are the CPU reference). Every matrix is row-major f32.
//
// One binding layout for every entry point: P (shapes and scalars), two read-only inputs a and b,
// two read-write buffers c (the output) and dd (a second output, or a per-row input). An entry
// point uses the bindings it names; the others are bound to placeholders.
//
// Every sum runs in a fixed order (serial over the reduced index, or a fixed tree), so a result
// does not depend on scheduling: a GPU run is reproducible.

override workgroup_size: u32 = 64u;

struct Params {
    // rows, inner size, columns (gemm: op(a) m×k, op(b) k×n, c m×n; elsewhere m rows of n)
    m: u32,
    k: u32,
    n: u32,
    batch: u32,
    // strides of a and b (op already applied: element (i, p) of op(a) is a[i·rsa + p·csa])
    rsa: u32,
    csa: u32,
    rsb: u32,
    csb: u32,
    // per-batch-item offsets of a, b and c
    sa: u32,
    sb: u32,
    sc: u32,
    _p0: u32,
    alpha: f32,
    beta: f32,
    _f0: f32,
    _f1: f32,
    // gemm: element offsets of a, b and c inside their bindings, and c's row stride
    oa: u32,
    ob: u32,
    oc: u32,
    rsc: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> dd: array<f32>;

const TILE: u32 = 16u;
var<workgroup> tile_a: array<f32, 256>;
var<workgroup> tile_b: array<f32, 256>;

// c = alpha·op(a)·op(b) + beta·c for each of `batch` items (workgroup z), 16×16 cells per
// workgroup through shared tiles. Each cell sums over p = 0, 1, …, k−1 in order. With beta = 0,
// c is not read (it may hold anything, NaN included), as in BLAS. Item z's element (i, p) of
// op(a) is a[oa + z·sa + i·rsa + p·csa] (b likewise); its cell (i, j) is c[oc + z·sc + i·rsc + j].
@compute @workgroup_size(16, 16)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.y * TILE + lid.y;
    let col = wid.x * TILE + lid.x;
    let base_a = P.oa + wid.z * P.sa;
    let base_b = P.ob + wid.z * P.sb;
    var acc = 0.0;
    let tiles = (P.k + TILE - 1u) / TILE;
    for (var t = 0u; t < tiles; t++) {
        let pa = t * TILE + lid.x;
        var va = 0.0;
        if row < P.m && pa < P.k {
            va = a[base_a + row * P.rsa + pa * P.csa];
        }
        tile_a[lid.y * TILE + lid.x] = va;
        let pb = t * TILE + lid.y;
        var vb = 0.0;
        if pb < P.k && col < P.n {
            vb = b[base_b + pb * P.rsb + col * P.csb];
        }
        tile_b[lid.y * TILE + lid.x] = vb;
        workgroupBarrier();
        for (var p = 0u; p < TILE; p++) {
            acc += tile_a[lid.y * TILE + p] * tile_b[p * TILE + lid.x];
        }
        workgroupBarrier();
    }
    if row < P.m && col < P.n {
        let idx = P.oc + wid.z * P.sc + row * P.rsc + col;
        if P.beta == 0.0 {
            c[idx] = P.alpha * acc;
        } else {
            c[idx] = P.alpha * acc + P.beta * c[idx];
        }
    }
}

fn item(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * workgroup_size + lid;
}

// c[i, j] = a[j]: m rows of the n-vector a (a bias, before a gemm with beta = 1).
@compute @workgroup_size(workgroup_size)
fn fill_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m * P.n {
        return;
    }
    c[i] = a[i % P.n];
}

// c = max(c, 0), in place.
@compute @workgroup_size(workgroup_size)
fn relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m * P.n {
        return;
    }
    c[i] = max(c[i], 0.0);
}

// ReLU's backward: c = 0 where the ReLU's output a is not positive.
@compute @workgroup_size(workgroup_size)
fn relu_mask(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m * P.n {
        return;
    }
    if a[i] <= 0.0 {
        c[i] = 0.0;
    }
}

// c[i, j] *= a[i]: each row scaled by its own factor.
@compute @workgroup_size(workgroup_size)
fn scale_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m * P.n {
        return;
    }
    c[i] = c[i] * a[i / P.n];
}

// c[i, j] /= a[i]: each row divided by its own factor.
@compute @workgroup_size(workgroup_size)
fn div_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m * P.n {
        return;
    }
    c[i] = c[i] / a[i / P.n];
}

// c = a[0]·c, elementwise (a scalar parameter that stays on the GPU).
@compute @workgroup_size(workgroup_size)
fn scale_by(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m * P.n {
        return;
    }
    c[i] = a[0] * c[i];
}

// c += a ∘ b, elementwise.
@compute @workgroup_size(workgroup_size)
fn mul_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m * P.n {
        return;
    }
    c[i] = c[i] + a[i] * b[i];
}

// c = sigmoid(b[0] + a[0]·c), elementwise, with the scalars a[0] = α and b[0] = β on the GPU.
@compute @workgroup_size(workgroup_size)
fn sigmoid_affine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m * P.n {
        return;
    }
    c[i] = 1.0 / (1.0 + exp(-(b[0] + a[0] * c[i])));
}

// The sigmoid's backward in place: c = c ∘ a ∘ (1 − a), with a = the sigmoid's output.
@compute @workgroup_size(workgroup_size)
fn sigmoid_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m * P.n {
        return;
    }
    c[i] = c[i] * a[i] * (1.0 - a[i]);
}

// Per row of a: c = a on the row's first largest entry and 0 elsewhere; dd the same as 1 or 0.
@compute @workgroup_size(workgroup_size)
fn argmax_mask(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m {
        return;
    }
    let o = i * P.n;
    var best = 0u;
    for (var j = 1u; j < P.n; j++) {
        if a[o + j] > a[o + best] {
            best = j;
        }
    }
    for (var j = 0u; j < P.n; j++) {
        let hit = j == best;
        c[o + j] = select(0.0, a[o + j], hit);
        dd[o + j] = select(0.0, 1.0, hit);
    }
}

// c[i] += a[i % k]: a block of k values added to every block of c (a bias, positions).
@compute @workgroup_size(workgroup_size)
fn add_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m * P.n {
        return;
    }
    c[i] = c[i] + a[i % P.k];
}

// c[i, j] = a[i, j] · b[j]: every row scaled by one vector (LayerNorm's γ).
@compute @workgroup_size(workgroup_size)
fn mul_cols(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m * P.n {
        return;
    }
    c[i] = a[i] * b[i % P.n];
}

// Masked keys: c holds batch·k rows of n scores per head block (row r is video (r / k) % batch);
// a score whose key is padding (a[v·n + j] = 0) becomes −∞, so the softmax gives it no weight.
@compute @workgroup_size(workgroup_size)
fn mask_keys(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m * P.n {
        return;
    }
    let r = i / P.n;
    let j = i % P.n;
    let v = (r / P.k) % P.batch;
    if a[v * P.n + j] == 0.0 {
        c[i] = bitcast<f32>(0xff800000u);
    }
}

// LayerNorm's normalisation per row of a (n values): c = (a − mean)/√(var + 1e-5), dd[i] = the
// reciprocal of the root (γ and β are applied after, with mul_cols and add_tiled).
@compute @workgroup_size(workgroup_size)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m {
        return;
    }
    let o = i * P.n;
    let dn = f32(P.n);
    var s = 0.0;
    for (var j = 0u; j < P.n; j++) {
        s += a[o + j];
    }
    let mean = s / dn;
    var v = 0.0;
    for (var j = 0u; j < P.n; j++) {
        let x = a[o + j] - mean;
        v += x * x;
    }
    let r = 1.0 / sqrt(v / dn + 1e-5);
    for (var j = 0u; j < P.n; j++) {
        c[o + j] = (a[o + j] - mean) * r;
    }
    dd[i] = r;
}

// LayerNorm's backward to its input per row: a = x̂, b = 1/σ per row, dd = dy ∘ γ; c = dx =
// (1/σ)·(dd − mean(dd) − x̂·mean(dd ∘ x̂)).
@compute @workgroup_size(workgroup_size)
fn layer_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m {
        return;
    }
    let o = i * P.n;
    let dn = f32(P.n);
    var m1 = 0.0;
    var m2 = 0.0;
    for (var j = 0u; j < P.n; j++) {
        m1 += dd[o + j];
        m2 += dd[o + j] * a[o + j];
    }
    m1 = m1 / dn;
    m2 = m2 / dn;
    for (var j = 0u; j < P.n; j++) {
        c[o + j] = b[i] * (dd[o + j] - m1 - a[o + j] * m2);
    }
}

// c += alpha·a, elementwise.
@compute @workgroup_size(workgroup_size)
fn axpy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m * P.n {
        return;
    }
    c[i] = c[i] + P.alpha * a[i];
}

// c[j] += Σ_i a[i, j] over the m rows, one invocation per column, rows in order (a bias's
// gradient, summed as the CPU sums it).
@compute @workgroup_size(workgroup_size)
fn col_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let j = item(wid, nwg, lid);
    if j >= P.n {
        return;
    }
    var s = c[j];
    for (var i = 0u; i < P.m; i++) {
        s = s + a[i * P.n + j];
    }
    c[j] = s;
}

// Rows of a divided by max(‖row‖, 1e-12) into c; the norms (before the clamp) into dd.
@compute @workgroup_size(workgroup_size)
fn normalize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m {
        return;
    }
    let o = i * P.n;
    var s = 0.0;
    for (var j = 0u; j < P.n; j++) {
        let v = a[o + j];
        s += v * v;
    }
    let norm = sqrt(s);
    let scale = max(norm, 1e-12);
    for (var j = 0u; j < P.n; j++) {
        c[o + j] = a[o + j] / scale;
    }
    dd[i] = norm;
}

// normalize's backward: a = y, b = dL/dy, dd = the norms; c = dL/dx.
@compute @workgroup_size(workgroup_size)
fn normalize_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m {
        return;
    }
    let o = i * P.n;
    let norm = dd[i];
    if norm > 1e-12 {
        var dot = 0.0;
        for (var j = 0u; j < P.n; j++) {
            dot += a[o + j] * b[o + j];
        }
        for (var j = 0u; j < P.n; j++) {
            c[o + j] = (b[o + j] - a[o + j] * dot) / norm;
        }
    } else {
        for (var j = 0u; j < P.n; j++) {
            c[o + j] = b[o + j] / 1e-12;
        }
    }
}

// Row-wise softmax of c, in place.
@compute @workgroup_size(workgroup_size)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m {
        return;
    }
    let o = i * P.n;
    var mx = c[o];
    for (var j = 1u; j < P.n; j++) {
        mx = max(mx, c[o + j]);
    }
    var s = 0.0;
    for (var j = 0u; j < P.n; j++) {
        let e = exp(c[o + j] - mx);
        c[o + j] = e;
        s += e;
    }
    for (var j = 0u; j < P.n; j++) {
        c[o + j] = c[o + j] / s;
    }
}

// softmax's backward: a = W, b = dL/dW; c = W ∘ (dW − rowsum(dW ∘ W)).
@compute @workgroup_size(workgroup_size)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m {
        return;
    }
    let o = i * P.n;
    var dot = 0.0;
    for (var j = 0u; j < P.n; j++) {
        dot += a[o + j] * b[o + j];
    }
    for (var j = 0u; j < P.n; j++) {
        c[o + j] = a[o + j] * (b[o + j] - dot);
    }
}

const LOG_EPS: f32 = 1e-11;

// Cross-entropy per row: c[i] = dd[i] · Σ_j b[i, j]·log(a[i, j] + 1e-11), with a = P, b = T and
// dd the row mask (1 or 0).
@compute @workgroup_size(workgroup_size)
fn ce_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m {
        return;
    }
    let o = i * P.n;
    var s = 0.0;
    for (var j = 0u; j < P.n; j++) {
        s += b[o + j] * log(a[o + j] + LOG_EPS);
    }
    c[i] = select(0.0, s, dd[i] != 0.0);
}

// Cross-entropy's backward to the logits Z of P = softmax(Z/τ): a = P, b = T, dd the row mask,
// alpha = τ, beta = 1/rows. With g_j = −T_j/(P_j + 1e-11)·beta: c = P ∘ (g − Σ_j g_j P_j) / τ on
// masked-in rows, 0 elsewhere.
@compute @workgroup_size(workgroup_size)
fn ce_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.m {
        return;
    }
    let o = i * P.n;
    if dd[i] == 0.0 {
        for (var j = 0u; j < P.n; j++) {
            c[o + j] = 0.0;
        }
        return;
    }
    var gp = 0.0;
    for (var j = 0u; j < P.n; j++) {
        let g = -b[o + j] / (a[o + j] + LOG_EPS) * P.beta;
        c[o + j] = g;
        gp += g * a[o + j];
    }
    for (var j = 0u; j < P.n; j++) {
        c[o + j] = a[o + j] * (c[o + j] - gp) / P.alpha;
    }
}

var<workgroup> partial: array<f32, 256>;

// c[0] = alpha · Σ_i a[i] over m values, in one workgroup: each invocation sums a strided
// share in order, then a fixed tree over the invocations (workgroup_size a power of two ≤ 256).
@compute @workgroup_size(workgroup_size)
fn reduce_sum(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < P.m; i += workgroup_size) {
        s += a[i];
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var half = workgroup_size / 2u; half > 0u; half /= 2u) {
        if lid < half {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        c[0] = P.alpha * partial[0];
    }
}
