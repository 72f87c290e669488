// The ASOT solver's iterations on the GPU (asot_gpu.rs dispatches them; asot.rs is the CPU
// reference and states the algorithm). One invocation per row for the per-row passes, one per
// (video, row chunk, column) for the local prefix sums, one per (video, column) for the scan
// over chunks. Every sum runs in a fixed order, so results do not depend on scheduling.
//
// Layouts (B videos padded to N rows, K actions, R = rows_per_chunk, C = ⌈N/R⌉ chunks):
//   cost, t, l       B×N×K           cell (v, i, j) at (v·N + i)·K + j
//   rows             B×N×2           row sum of T, then the row's max of G (automatic step)
//   pt               B×(N+1)×(K+1)   chunk-local prefix sums of T per column (column K: of the
//                                    row sums); entry x covers the rows of chunk ⌊(x−1)/R⌋ up to x−1
//   cols             B×C×(K+1)       chunk totals, then (after `scan`) the sums of the chunks
//                                    before; then B×K action-marginal terms; then the step
//                                    (and the max it came from) at `state`

override workgroup_size: u32 = 64u;
override rows_per_chunk: u32 = 128u;

struct Params {
    b: u32,
    n: u32,
    k: u32,
    // window half-width a = ⌊N·r⌋
    a: u32,
    chunks: u32,
    // 1 when the GW term is on (a > 0 and α > 0)
    gw: u32,
    // 1 when the step is fixed (`step`), 0 when it is 4 / max(G) of the first iteration
    fixed_step: u32,
    // offset of the action-marginal terms in `cols`
    colterm: u32,
    alpha: f32,
    lin: f32,
    eps: f32,
    lambda: f32,
    inv_r: f32,
    step: f32,
    // offset of the step in `cols`
    state: u32,
    _pad: u32,
}

struct Video {
    // valid rows
    nv: u32,
    // the starting plan 1/(nv·K) and its log
    t0: f32,
    l0: f32,
    // the row marginal 1/nv and its log
    marginal: f32,
    log_marginal: f32,
    _p0: f32,
    _p1: f32,
    _p2: f32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> cost: array<f32>;
@group(0) @binding(2) var<storage, read> videos: array<Video>;
@group(0) @binding(3) var<storage, read_write> t: array<f32>;
@group(0) @binding(4) var<storage, read_write> l: array<f32>;
@group(0) @binding(5) var<storage, read_write> rows: array<f32>;
@group(0) @binding(6) var<storage, read_write> pt: array<f32>;
@group(0) @binding(7) var<storage, read_write> cols: array<f32>;

var<workgroup> partial: array<f32, workgroup_size>;

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * workgroup_size + lid;
}

fn cell(v: u32, i: u32, j: u32) -> u32 {
    return (v * P.n + i) * P.k + j;
}

fn pidx(v: u32, x: u32, j: u32) -> u32 {
    return (v * (P.n + 1u) + x) * (P.k + 1u) + j;
}

fn oidx(v: u32, c: u32, j: u32) -> u32 {
    return (v * P.chunks + c) * (P.k + 1u) + j;
}

// The chunk whose local prefix sums hold prefix sum number x (x ≥ 1; x = 0 is chunk 0's zero).
fn chunk_of(x: u32) -> u32 {
    return (max(x, 1u) - 1u) / rows_per_chunk;
}

// What the GW term of row i needs: the window [lo, hi) and Σ_window rowsum − rowsum_i.
struct Window {
    on: bool,
    lo: u32,
    hi: u32,
    base: f32,
}

fn window(v: u32, i: u32, nv: u32) -> Window {
    var w: Window;
    w.on = P.gw == 1u && i < nv;
    w.lo = select(0u, i - P.a, i >= P.a);
    w.hi = min(i + P.a, P.n - 1u) + 1u;
    w.base = 0.0;
    if w.on {
        let k = P.k;
        let win_rows = pt[pidx(v, w.hi, k)] - pt[pidx(v, w.lo, k)];
        let win_off = cols[oidx(v, chunk_of(w.hi), k)] - cols[oidx(v, chunk_of(w.lo), k)];
        w.base = (win_rows + win_off) - rows[2u * (v * P.n + i)];
    }
    return w;
}

// G of cell (v, i, j): α·GW + (1 − α)·C + ε·log(T + 1e-12) + λ_a·(log(colsum·K + 1e-12) + 1).
fn grad(v: u32, i: u32, j: u32, w: Window) -> f32 {
    let c = cell(v, i, j);
    let tij = t[c];
    let rest = P.lin * cost[c] + P.eps * log(tij + 1e-12) + cols[P.colterm + v * P.k + j];
    if !w.on {
        return rest;
    }
    let colwin = (pt[pidx(v, w.hi, j)] - pt[pidx(v, w.lo, j)])
        + (cols[oidx(v, chunk_of(w.hi), j)] - cols[oidx(v, chunk_of(w.lo), j)]);
    let gw = (w.base - colwin + tij) * P.inv_r;
    return P.alpha * gw + rest;
}

// T and log T of the uniform start; padded rows are 0.
@compute @workgroup_size(workgroup_size)
fn init(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let idx = flat(wid, nwg, lid);
    if idx >= P.b * P.n {
        return;
    }
    let v = idx / P.n;
    let i = idx % P.n;
    let vid = videos[v];
    var s = 0.0;
    for (var j = 0u; j < P.k; j++) {
        let c = cell(v, i, j);
        if i < vid.nv {
            t[c] = vid.t0;
            l[c] = vid.l0;
            s += vid.t0;
        } else {
            t[c] = 0.0;
            l[c] = 0.0;
        }
    }
    rows[2u * idx] = s;
    rows[2u * idx + 1u] = 0.0;
}

// Chunk-local prefix sums of one column (or, for j = K, of the row sums) over one row chunk,
// and the chunk's total.
@compute @workgroup_size(workgroup_size)
fn prefix(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let idx = flat(wid, nwg, lid);
    let k1 = P.k + 1u;
    if idx >= P.b * P.chunks * k1 {
        return;
    }
    let j = idx % k1;
    let c = (idx / k1) % P.chunks;
    let v = idx / (k1 * P.chunks);
    let first = c * rows_per_chunk;
    let end = min(first + rows_per_chunk, P.n);
    if c == 0u {
        pt[pidx(v, 0u, j)] = 0.0;
    }
    var s = 0.0;
    for (var x = first; x < end; x++) {
        if j < P.k {
            s += t[cell(v, x, j)];
        } else {
            s += rows[2u * (v * P.n + x)];
        }
        pt[pidx(v, x + 1u, j)] = s;
    }
    cols[oidx(v, c, j)] = s;
}

// The exclusive scan of the chunk totals of one column, in place, and the column's
// action-marginal term from the grand total.
@compute @workgroup_size(workgroup_size)
fn scan(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let idx = flat(wid, nwg, lid);
    let k1 = P.k + 1u;
    if idx >= P.b * k1 {
        return;
    }
    let j = idx % k1;
    let v = idx / k1;
    var run = 0.0;
    for (var c = 0u; c < P.chunks; c++) {
        let o = oidx(v, c, j);
        let total = cols[o];
        cols[o] = run;
        run += total;
    }
    if j < P.k {
        cols[P.colterm + v * P.k + j] = P.lambda * (log(run * f32(P.k) + 1e-12) + 1.0);
    }
}

// The largest G of each row, padded rows included (the reference takes the automatic step
// from the whole batch).
@compute @workgroup_size(workgroup_size)
fn row_max(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let idx = flat(wid, nwg, lid);
    if idx >= P.b * P.n {
        return;
    }
    let v = idx / P.n;
    let i = idx % P.n;
    let w = window(v, i, videos[v].nv);
    var m = grad(v, i, 0u, w);
    for (var j = 1u; j < P.k; j++) {
        m = max(m, grad(v, i, j, w));
    }
    rows[2u * idx + 1u] = m;
}

// step = 4 / max(G) over the batch, by one workgroup (a max is exact in any order).
@compute @workgroup_size(workgroup_size)
fn reduce_step(@builtin(local_invocation_index) lid: u32) {
    var m = -3.4028235e38;
    for (var x = lid; x < P.b * P.n; x += workgroup_size) {
        m = max(m, rows[2u * x + 1u]);
    }
    partial[lid] = m;
    workgroupBarrier();
    for (var s = workgroup_size / 2u; s > 0u; s /= 2u) {
        if lid < s {
            partial[lid] = max(partial[lid], partial[lid + s]);
        }
        workgroupBarrier();
    }
    if lid == 0u {
        cols[P.state] = 4.0 / partial[0];
        cols[P.state + 1u] = partial[0];
    }
}

// One mirror-descent step of a valid row: L ← L − step·G, T = exp(L − max) scaled to the row
// marginal, L shifted to log T, and the new row sum.
@compute @workgroup_size(workgroup_size)
fn update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let idx = flat(wid, nwg, lid);
    if idx >= P.b * P.n {
        return;
    }
    let v = idx / P.n;
    let i = idx % P.n;
    let vid = videos[v];
    if i >= vid.nv {
        return;
    }
    let step = select(cols[P.state], P.step, P.fixed_step == 1u);
    let w = window(v, i, vid.nv);
    var m = -3.4028235e38;
    for (var j = 0u; j < P.k; j++) {
        let c = cell(v, i, j);
        let x = l[c] - step * grad(v, i, j, w);
        l[c] = x;
        m = max(m, x);
    }
    // every G of the row is computed (it reads this row of T) before T is overwritten
    var s = 0.0;
    for (var j = 0u; j < P.k; j++) {
        let c = cell(v, i, j);
        let e = exp(l[c] - m);
        t[c] = e;
        s += e;
    }
    let f = vid.marginal / s;
    let shift = vid.log_marginal - log(s) - m;
    var r = 0.0;
    for (var j = 0u; j < P.k; j++) {
        let c = cell(v, i, j);
        let x = t[c] * f;
        t[c] = x;
        r += x;
        l[c] = l[c] + shift;
    }
    rows[2u * idx] = r;
}
