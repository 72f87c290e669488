//! Times the ASOT solver on a synthetic N×K cost: `cargo run --release --example solve_timing -- N K`
//! (`REPS` repeats, best taken; `ITERS` overrides the 25 iterations, to separate set-up from
//! iteration cost; `B` solves a batch of that many copies, to see what a second thread gives).
use clot_stages::ot::{AsotParams, solve_batch};

fn env(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|r| r.parse().ok())
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (n, k) = (
        args.first().copied().unwrap_or(5292),
        args.get(1).copied().unwrap_or(8),
    );
    let cost: Vec<f32> = (0..n * k)
        .map(|x| {
            1.0 - ((x / k) * k / n == x % k) as i32 as f32 * 0.5
                - 0.3 * ((x as f32 * 0.618).fract() - 0.5)
        })
        .collect();
    let mut p = AsotParams::default();
    if let Some(i) = env("ITERS") {
        p.iters = i;
    }
    let b = env("B").unwrap_or(1).max(1);
    let costs: Vec<f32> = (0..b).flat_map(|_| cost.iter().copied()).collect();
    let valid = vec![n; b];
    let solve = || solve_batch(&costs, b, n, k, &valid, &p).expect("solve");
    // FNV-1a of the plan's bits: a change that should keep the bits must keep this
    let hash = solve().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ x.to_bits() as u64).wrapping_mul(0x100_0000_01b3)
    });
    let mut best = f64::INFINITY;
    for _ in 0..env("REPS").unwrap_or(20) {
        let t = std::time::Instant::now();
        std::hint::black_box(solve());
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{b}×{n}×{k}: best {:.3} ms, {:.2} ns per cell-iteration, plan {hash:016x}",
        best * 1e3,
        best / (b * n * k * p.iters) as f64 * 1e9
    );
}
