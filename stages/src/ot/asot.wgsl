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
//   aux              the variants' state: B flags (the balanced projection's progress: 0 running,
//                    1 converged this iteration, 2 converged before), then
//                    balanced:   B×K column potentials v, B×K how far each moved, B×C×K×2 each
//                                chunk's (max, Σ exp(· − max)) of L + u per column
//                    unbalanced: B×C×2 each chunk's (max, Σ exp(· − max)) of L, B×2 the video's
//   while a variant runs, rows holds (Σ exp(L − max), max) of each row (unbalanced) or its row
//   potential u in the second slot (balanced)

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
    // 1: the action marginal is enforced (no λ_a term; Sinkhorn projection after each step)
    balanced: u32,
    // 1: the frame marginal is relaxed by a KL term of weight `lambda_frames`
    unbalanced: u32,
    lambda_frames: f32,
    // the balanced projection stops once no column potential moves by more than this, relative
    // to max(1, |v|)
    sinkhorn_tol: f32,
    // The window of one dispatch (a video too long for one storage binding is solved in row
    // windows, each its own bind group): the rows [row0, row_end) and chunks [chunk0, chunk_end)
    // it covers (flat over the batch), and where its bound parts of cost, t and l (cell0) and of
    // pt (pt0) start. One window covering everything has 0, B·N, 0, B·C, 0, 0.
    row0: u32,
    row_end: u32,
    chunk0: u32,
    chunk_end: u32,
    cell0: u32,
    pt0: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
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
@group(0) @binding(8) var<storage, read_write> aux: array<f32>;

var<workgroup> partial: array<f32, workgroup_size>;

fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * workgroup_size + lid;
}

// Index into this window's part of cost, t and l.
fn cell(v: u32, i: u32, j: u32) -> u32 {
    return (v * P.n + i) * P.k + j - P.cell0;
}

// Index into this window's part of pt.
fn pidx(v: u32, x: u32, j: u32) -> u32 {
    return (v * (P.n + 1u) + x) * (P.k + 1u) + j - P.pt0;
}

// The flat row (v·N + i) of a per-row invocation, or B·N past this window's rows.
fn row_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    let idx = flat(wid, nwg, lid) + P.row0;
    return select(P.b * P.n, idx, idx < P.row_end);
}

// The flat item of an invocation over (chunk, `per` items of it), or B·C·per past this window's
// chunks.
fn chunk_item(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, per: u32) -> u32 {
    let idx = flat(wid, nwg, lid) + P.chunk0 * per;
    return select(P.b * P.chunks * per, idx, idx < P.chunk_end * per);
}

fn oidx(v: u32, c: u32, j: u32) -> u32 {
    return (v * P.chunks + c) * (P.k + 1u) + j;
}

// The chunk whose local prefix sums hold prefix sum number x (x ≥ 1; x = 0 is chunk 0's zero).
fn chunk_of(x: u32) -> u32 {
    return (max(x, 1u) - 1u) / rows_per_chunk;
}

// What the GW term of row i needs: the window [lo, hi) and Σ_window rowsum − rowsum_i; and the
// row's frame-marginal term (unbalanced frames; 0 otherwise).
struct Window {
    on: bool,
    lo: u32,
    hi: u32,
    base: f32,
    fkl: f32,
}

fn window(v: u32, i: u32, nv: u32) -> Window {
    var w: Window;
    w.on = P.gw == 1u && i < nv;
    w.lo = select(0u, i - P.a, i >= P.a);
    w.hi = min(i + P.a, P.n - 1u) + 1u;
    w.base = 0.0;
    w.fkl = 0.0;
    if P.unbalanced == 1u && i < nv {
        w.fkl = P.lambda_frames * (log(rows[2u * (v * P.n + i)] * f32(nv) + 1e-12) + 1.0);
    }
    if w.on {
        let k = P.k;
        let win_rows = pt[pidx(v, w.hi, k)] - pt[pidx(v, w.lo, k)];
        let win_off = cols[oidx(v, chunk_of(w.hi), k)] - cols[oidx(v, chunk_of(w.lo), k)];
        w.base = (win_rows + win_off) - rows[2u * (v * P.n + i)];
    }
    return w;
}

// G of cell (v, i, j): α·GW + (1 − α)·C + ε·log(T + 1e-12) + λ_a·(log(colsum·K + 1e-12) + 1)
// (+ λ_f·(log(rowsum·nv + 1e-12) + 1) with unbalanced frames).
fn grad(v: u32, i: u32, j: u32, w: Window) -> f32 {
    let c = cell(v, i, j);
    let tij = t[c];
    let rest = P.lin * cost[c] + P.eps * log(tij + 1e-12) + cols[P.colterm + v * P.k + j] + w.fkl;
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
    let idx = row_of(wid, nwg, lid);
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
    let k1 = P.k + 1u;
    let idx = chunk_item(wid, nwg, lid, k1);
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
        var term = P.lambda * (log(run * f32(P.k) + 1e-12) + 1.0);
        if P.balanced == 1u {
            term = 0.0;
            // the projection after this iteration's step starts from v = 0
            aux[sk_v(v, j)] = 0.0;
        }
        cols[P.colterm + v * P.k + j] = term;
    } else if P.balanced == 1u {
        aux[v] = 0.0;
    }
}

// The largest G of each row, padded rows included (the reference takes the automatic step
// from the whole batch).
@compute @workgroup_size(workgroup_size)
fn row_max(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let idx = row_of(wid, nwg, lid);
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

// L ← L − step·G for valid row i of video v (G reads T, which this leaves as it is); returns the
// row's max of L.
fn step_row(v: u32, i: u32, nv: u32) -> f32 {
    let step = select(cols[P.state], P.step, P.fixed_step == 1u);
    let w = window(v, i, nv);
    var m = -3.4028235e38;
    for (var j = 0u; j < P.k; j++) {
        let c = cell(v, i, j);
        let x = l[c] - step * grad(v, i, j, w);
        l[c] = x;
        m = max(m, x);
    }
    return m;
}

// One mirror-descent step of a valid row: L ← L − step·G, T = exp(L − max) scaled to the row
// marginal, L shifted to log T, and the new row sum.
@compute @workgroup_size(workgroup_size)
fn update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let idx = row_of(wid, nwg, lid);
    if idx >= P.b * P.n {
        return;
    }
    let v = idx / P.n;
    let i = idx % P.n;
    let vid = videos[v];
    if i >= vid.nv {
        return;
    }
    let m = step_row(v, i, vid.nv);
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


// ---- the variants (asot.rs `update_relaxed`): the step, then a projection in its own passes ----

fn sk_v(v: u32, j: u32) -> u32 {
    return P.b + v * P.k + j;
}

fn sk_moved(v: u32, j: u32) -> u32 {
    return P.b + P.b * P.k + v * P.k + j;
}

fn sk_part(v: u32, c: u32, j: u32) -> u32 {
    return P.b + 2u * P.b * P.k + 2u * ((v * P.chunks + c) * P.k + j);
}

fn ub_part(v: u32, c: u32) -> u32 {
    return P.b + 2u * (v * P.chunks + c);
}

fn ub_video(v: u32) -> u32 {
    return P.b + 2u * P.b * P.chunks + 2u * v;
}

// (max, Σ exp(· − max)) of two such pairs combined; an empty pair is (−inf, 0).
fn lse_add(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    if b.y == 0.0 {
        return a;
    }
    if a.y == 0.0 {
        return b;
    }
    let m = max(a.x, b.x);
    return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

// L ← L − step·G for a valid row (balanced: and u = 0; unbalanced: the row's (Σ exp(L − max),
// max) into `rows`). Every G of the row is computed before L is written.
@compute @workgroup_size(workgroup_size)
fn step_l(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let idx = row_of(wid, nwg, lid);
    if idx >= P.b * P.n {
        return;
    }
    let v = idx / P.n;
    let i = idx % P.n;
    let vid = videos[v];
    if i >= vid.nv {
        return;
    }
    let m = step_row(v, i, vid.nv);
    if P.balanced == 1u {
        rows[2u * idx + 1u] = 0.0;
    } else {
        var s = 0.0;
        for (var j = 0u; j < P.k; j++) {
            s += exp(l[cell(v, i, j)] - m);
        }
        rows[2u * idx] = s;
        rows[2u * idx + 1u] = m;
    }
}

// Unbalanced frames: each row chunk's (max, Σ exp(L − max)) over its valid rows.
@compute @workgroup_size(workgroup_size)
fn ub_chunks(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let idx = chunk_item(wid, nwg, lid, 1u);
    if idx >= P.b * P.chunks {
        return;
    }
    let c = idx % P.chunks;
    let v = idx / P.chunks;
    let end = min((c + 1u) * rows_per_chunk, videos[v].nv);
    var acc = vec2<f32>(-3.4028235e38, 0.0);
    for (var i = c * rows_per_chunk; i < end; i++) {
        let r = 2u * (v * P.n + i);
        acc = lse_add(acc, vec2<f32>(rows[r + 1u], rows[r]));
    }
    aux[ub_part(v, c)] = acc.x;
    aux[ub_part(v, c) + 1u] = acc.y;
}

// Unbalanced frames: the video's (max, Σ exp(L − max)) from its chunks, in order.
@compute @workgroup_size(workgroup_size)
fn ub_video_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let v = flat(wid, nwg, lid);
    if v >= P.b {
        return;
    }
    var acc = vec2<f32>(-3.4028235e38, 0.0);
    for (var c = 0u; c < P.chunks; c++) {
        acc = lse_add(acc, vec2<f32>(aux[ub_part(v, c)], aux[ub_part(v, c) + 1u]));
    }
    aux[ub_video(v)] = acc.x;
    aux[ub_video(v) + 1u] = acc.y;
}

// Unbalanced frames: T = exp(L − max)/Σ over the whole video (only the total mass is fixed),
// L shifted to log T, and the row's new sum.
@compute @workgroup_size(workgroup_size)
fn ub_finish(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let idx = row_of(wid, nwg, lid);
    if idx >= P.b * P.n {
        return;
    }
    let v = idx / P.n;
    let i = idx % P.n;
    if i >= videos[v].nv {
        return;
    }
    let m = aux[ub_video(v)];
    let total = aux[ub_video(v) + 1u];
    let f = select(0.0, 1.0 / total, total > 0.0);
    let shift = log(f) - m;
    var r = 0.0;
    for (var j = 0u; j < P.k; j++) {
        let c = cell(v, i, j);
        let x = exp(l[c] - m) * f;
        t[c] = x;
        r += x;
        l[c] = l[c] + shift;
    }
    rows[2u * idx] = r;
}

// Balanced actions, one Sinkhorn iteration in four passes (asot.rs: columns, then rows, stop
// once the column potentials settle). First each chunk's (max, Σ exp(· − max)) of L + u per
// column, over its valid rows.
@compute @workgroup_size(workgroup_size)
fn sk_cols(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let idx = chunk_item(wid, nwg, lid, P.k);
    if idx >= P.b * P.chunks * P.k {
        return;
    }
    let j = idx % P.k;
    let c = (idx / P.k) % P.chunks;
    let v = idx / (P.k * P.chunks);
    if aux[v] != 0.0 {
        return;
    }
    let end = min((c + 1u) * rows_per_chunk, videos[v].nv);
    var m = -3.4028235e38;
    for (var i = c * rows_per_chunk; i < end; i++) {
        m = max(m, l[cell(v, i, j)] + rows[2u * (v * P.n + i) + 1u]);
    }
    var s = 0.0;
    for (var i = c * rows_per_chunk; i < end; i++) {
        s += exp(l[cell(v, i, j)] + rows[2u * (v * P.n + i) + 1u] - m);
    }
    aux[sk_part(v, c, j)] = m;
    aux[sk_part(v, c, j) + 1u] = s;
}

// The column potential v_j = log(1/K) − LSE_i (L_ij + u_i) from the chunks, in order, and how
// far it moved.
@compute @workgroup_size(workgroup_size)
fn sk_colsum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let idx = flat(wid, nwg, lid);
    if idx >= P.b * P.k {
        return;
    }
    let j = idx % P.k;
    let v = idx / P.k;
    if aux[v] != 0.0 {
        return;
    }
    var acc = vec2<f32>(-3.4028235e38, 0.0);
    for (var c = 0u; c < P.chunks; c++) {
        acc = lse_add(acc, vec2<f32>(aux[sk_part(v, c, j)], aux[sk_part(v, c, j) + 1u]));
    }
    var pot = 0.0;
    if acc.y > 0.0 {
        pot = -log(f32(P.k)) - (acc.x + log(acc.y));
    }
    let old = aux[sk_v(v, j)];
    aux[sk_moved(v, j)] = abs(pot - old) / max(1.0, abs(pot));
    aux[sk_v(v, j)] = pot;
}

// Whether the projection of each video has settled: its flag goes 0 → 1 in the iteration whose
// columns moved less than the tolerance (that iteration's rows still run), 1 → 2 in the next.
@compute @workgroup_size(workgroup_size)
fn sk_check(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let v = flat(wid, nwg, lid);
    if v >= P.b {
        return;
    }
    if aux[v] == 1.0 {
        aux[v] = 2.0;
    } else if aux[v] == 0.0 {
        var moved = 0.0;
        for (var j = 0u; j < P.k; j++) {
            moved = max(moved, aux[sk_moved(v, j)]);
        }
        if moved < P.sinkhorn_tol {
            aux[v] = 1.0;
        }
    }
}

// The row potential u_i = log(1/nv) − LSE_j (L_ij + v_j) of a valid row.
@compute @workgroup_size(workgroup_size)
fn sk_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let idx = row_of(wid, nwg, lid);
    if idx >= P.b * P.n {
        return;
    }
    let v = idx / P.n;
    let i = idx % P.n;
    let vid = videos[v];
    if i >= vid.nv || aux[v] == 2.0 {
        return;
    }
    var m = -3.4028235e38;
    for (var j = 0u; j < P.k; j++) {
        m = max(m, l[cell(v, i, j)] + aux[sk_v(v, j)]);
    }
    var s = 0.0;
    for (var j = 0u; j < P.k; j++) {
        s += exp(l[cell(v, i, j)] + aux[sk_v(v, j)] - m);
    }
    rows[2u * idx + 1u] = vid.log_marginal - (m + log(s));
}

// Balanced actions: L ← L + u + v, T = exp(L), and the row's new sum.
@compute @workgroup_size(workgroup_size)
fn sk_finish(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let idx = row_of(wid, nwg, lid);
    if idx >= P.b * P.n {
        return;
    }
    let v = idx / P.n;
    let i = idx % P.n;
    if i >= videos[v].nv {
        return;
    }
    let u = rows[2u * idx + 1u];
    var r = 0.0;
    for (var j = 0u; j < P.k; j++) {
        let c = cell(v, i, j);
        let x = l[c] + u + aux[sk_v(v, j)];
        l[c] = x;
        let e = exp(x);
        t[c] = e;
        r += e;
    }
    rows[2u * idx] = r;
}
