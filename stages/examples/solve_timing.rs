//! Times the ASOT solver on a synthetic N×K cost: `cargo run --release --example solve_timing -- N K`
//! (`REPS` repeats, best taken; `ITERS` overrides the 25 iterations, to separate set-up from
//! iteration cost).
use clot_stages::ot::{AsotParams, solve};

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
    if let Some(i) = std::env::var("ITERS").ok().and_then(|r| r.parse().ok()) {
        p.iters = i;
    }
    let mut best = f64::INFINITY;
    let plan = solve(&cost, n, k, n, &p).expect("solve");
    // FNV-1a of the plan's bits: a change that should keep the bits must keep this
    let hash = plan.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ x.to_bits() as u64).wrapping_mul(0x100_0000_01b3)
    });
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    for _ in 0..reps {
        let t = std::time::Instant::now();
        let plan = solve(&cost, n, k, n, &p).expect("solve");
        std::hint::black_box(plan);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{n}×{k}: best {:.3} ms, {:.2} ns per cell-iteration, plan {hash:016x}",
        best * 1e3,
        best / (n * k * p.iters) as f64 * 1e9
    );
}
