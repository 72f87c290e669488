// The SWD term of OT1's cost on the GPU (swd_gpu.rs dispatches it; cost.rs is the CPU reference),
// for a batch of B videos of `per` rows each: the circular projections of the rows on P
// directions, each column sorted per video (the released variant) by a bitonic network over
// columns padded to n2 = 2^⌈log₂ per⌉ rows, and the pairwise distances between frames and actions.
// One binding layout for every entry point, as in linalg.wgsl: a and b read, c and dd read-write.

override workgroup_size: u32 = 64u;

struct Params {
    // rows of the whole batch, columns (P), rows per video, padded column length
    rows: u32,
    cols: u32,
    per: u32,
    n2: u32,
    // the bitonic step: block size and stride (stride = size / 2 pairs each row with its mirror)
    size: u32,
    stride: u32,
    // actions per video, and 0 = released (√Σ d²), 1 = paper (scale · Σ |d|)
    k: u32,
    variant: u32,
    radius2: f32,
    scale: f32,
    _f0: f32,
    _f1: f32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> dd: array<f32>;

fn item(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * workgroup_size + lid;
}

// c[i] = Σ_j a[i, j]², serially over the `cols` values of row i.
@compute @workgroup_size(workgroup_size)
fn row_sq_norms(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if i >= P.rows {
        return;
    }
    var s = 0.0;
    for (var j = 0u; j < P.cols; j++) {
        let v = a[i * P.cols + j];
        s += v * v;
    }
    c[i] = s;
}

// c[i, p] = √max(‖x_i‖² + ρ²‖θ_vp‖² + c[i, p], 0) with c holding −2ρ⟨x_i, θ_vp⟩ and v = i / per:
// a = the rows' squared norms, b = the directions' (B·P).
@compute @workgroup_size(workgroup_size)
fn circular(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let idx = item(wid, nwg, lid);
    if idx >= P.rows * P.cols {
        return;
    }
    let i = idx / P.cols;
    let p = idx % P.cols;
    let v = i / P.per;
    let t = b[v * P.cols + p] * P.radius2;
    c[idx] = sqrt(max(a[i] + t + c[idx], 0.0));
}

// dd (B·P columns of n2 values) from a (row-major, B·per × P); the padding is +∞, which sorts last.
@compute @workgroup_size(workgroup_size)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let idx = item(wid, nwg, lid);
    let videos = P.rows / P.per;
    if idx >= videos * P.cols * P.n2 {
        return;
    }
    let column = idx / P.n2;
    let i = idx % P.n2;
    let v = column / P.cols;
    let p = column % P.cols;
    if i < P.per {
        dd[idx] = a[(v * P.per + i) * P.cols + p];
    } else {
        dd[idx] = bitcast<f32>(0x7f800000u);
    }
}

// One compare-exchange step of the bitonic network over every column of dd (as the CPU's network
// in cost.rs: a merge of blocks of `size` first pairs row r with its mirror size − 1 − r, then
// half-cleaners of strides size/4 … 1, all ascending).
@compute @workgroup_size(workgroup_size)
fn bitonic(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let t = item(wid, nwg, lid);
    let half_n = P.n2 / 2u;
    let videos = P.rows / P.per;
    if t >= videos * P.cols * half_n {
        return;
    }
    let base = (t / half_n) * P.n2;
    let j = t % half_n;
    var lo = 0u;
    var hi = 0u;
    if P.stride * 2u == P.size {
        let half = P.size / 2u;
        let block = j / half;
        let r = j % half;
        lo = block * P.size + r;
        hi = block * P.size + P.size - 1u - r;
    } else {
        let block = j / P.stride;
        let r = j % P.stride;
        lo = block * 2u * P.stride + r;
        hi = lo + P.stride;
    }
    let x = dd[base + lo];
    let y = dd[base + hi];
    dd[base + lo] = min(x, y);
    dd[base + hi] = max(x, y);
}

// c (row-major, B·per × P) from the sorted columns in a.
@compute @workgroup_size(workgroup_size)
fn scatter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let idx = item(wid, nwg, lid);
    if idx >= P.rows * P.cols {
        return;
    }
    let row = idx / P.cols;
    let p = idx % P.cols;
    let v = row / P.per;
    let i = row % P.per;
    c[idx] = a[(v * P.cols + p) * P.n2 + i];
}

// c[v, i, j] over the frames' rows a (B·per × P) and the actions' rows b (B·k × P), serially over
// p: released √Σ_p (a − b)², paper scale · Σ_p |a − b|.
@compute @workgroup_size(workgroup_size)
fn pairwise(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let idx = item(wid, nwg, lid);
    if idx >= P.rows * P.k {
        return;
    }
    let row = idx / P.k;
    let j = idx % P.k;
    let v = row / P.per;
    let ua = row * P.cols;
    let vb = (v * P.k + j) * P.cols;
    var s = 0.0;
    if P.variant == 0u {
        for (var p = 0u; p < P.cols; p++) {
            let x = a[ua + p] - b[vb + p];
            s += x * x;
        }
        c[idx] = sqrt(s);
    } else {
        for (var p = 0u; p < P.cols; p++) {
            s += abs(a[ua + p] - b[vb + p]);
        }
        c[idx] = s * P.scale;
    }
}
