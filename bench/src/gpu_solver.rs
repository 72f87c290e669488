//! `clot-bench gpu-solver`: the ASOT solver on the CPU (all rayon threads) and on wgpu, side by
//! side on the same inputs in one run, for N ∈ {10⁴, 10⁵, 10⁶} frames × K ∈ {8, 48} actions ×
//! batches of 1 and 64 videos (the default problem: ε 0.07, α 0.4, r 0.04, λ 0.1, 25 iterations).
//!
//! Each case is checked first: the GPU plan against the CPU plan (max |Δ|, argmax agreement).
//! Times are medians of `--repeats` runs, taken in turns. The GPU time is the whole call: the
//! upload of the costs, the iterations and the read-back of the plan. The transfers are also
//! timed on their own, as a buffer upload and read-back of the same size.
//!
//! The bandwidth figure: the solver must at least read the cost and log T and write log T and T
//! once per cell and iteration (16 bytes). That traffic over the GPU time (less the transfers)
//! is given as a fraction of the device's copy bandwidth, measured with a 1 GiB buffer-to-buffer
//! copy (read + write) in the same run.
//!
//! `--only "B=1 N=1000000 K=48"` (repeatable) runs just the cases named.
//!
//! A case larger than `--max-cells` (B·N·K; default 2·10⁷, a few seconds on this machine's CPU),
//! or whose single video exceeds the adapter's largest buffer, is listed as skipped, with the
//! reason. A batch above the adapter's limit per storage binding runs in groups of videos, and a
//! single video above it in row windows (`solve_batch_within`; the case says `windowed`). On a
//! software adapter (lavapipe) the GPU figures only show that the path works.

use anyhow::{Context, Result, bail};
use clot_stages::gpu::GpuContext;
use clot_stages::ot::{AsotParams, asot_gpu, solve_batch};

use crate::solver::synthetic_costs;
use crate::{median, time_once};

struct Args {
    max_cells: usize,
    /// Run only the cases named (`B=1 N=1000000 K=48`), when any are given.
    only: Vec<String>,
    repeats: usize,
    json: bool,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        max_cells: 20_000_000,
        only: Vec::new(),
        repeats: 3,
        json: false,
    };
    let mut it = args.iter().cloned();
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--max-cells" => a.max_cells = val()?.parse::<f64>()? as usize,
            "--repeats" => a.repeats = val()?.parse()?,
            "--only" => a.only.push(val()?),
            "--json" => a.json = true,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// Seconds for a buffer-to-buffer copy of `bytes` on the device (median of 5).
fn copy_seconds(ctx: &GpuContext, bytes: u64) -> Result<f64> {
    let mk = |usage| {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bandwidth"),
            size: bytes,
            usage,
            mapped_at_creation: false,
        })
    };
    let src = mk(wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST);
    let dst = mk(wgpu::BufferUsages::COPY_DST);
    let mut times = Vec::new();
    for _ in 0..6 {
        let mut e = ctx.device.create_command_encoder(&Default::default());
        e.copy_buffer_to_buffer(&src, 0, &dst, 0, bytes);
        let t = std::time::Instant::now();
        ctx.queue.submit([e.finish()]);
        ctx.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.remove(0); // the first copy also commits the memory
    Ok(median(times))
}

/// Seconds to upload `len` f32 values and read `len` back (the solver's transfers).
fn transfer_seconds(ctx: &GpuContext, len: usize) -> Result<f64> {
    let data = vec![0.5f32; len];
    let mut times = Vec::new();
    for _ in 0..3 {
        times.push(time_once(|| -> Result<()> {
            let buf = ctx.upload_windowed("transfer", &data)?;
            ctx.run_and_read("transfer", |_| {}, &[(&buf, len)])?;
            Ok(())
        })?);
    }
    Ok(median(times))
}

pub fn run(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    let ctx = GpuContext::shared()?;
    let adapter = ctx.describe();
    let threads = rayon::current_num_threads();
    let p = AsotParams::default();
    let copy_bytes = (1u64 << 30).min(ctx.max_binding());
    let bandwidth = 2.0 * copy_bytes as f64 / copy_seconds(&ctx, copy_bytes)?;
    eprintln!(
        "adapter: {adapter}{}; copy bandwidth {:.1} GB/s (read + write)",
        if ctx.is_software() { " (software)" } else { "" },
        bandwidth / 1e9
    );
    let mut rows = Vec::new();
    for n in [10_000usize, 100_000, 1_000_000] {
        for k in [8usize, 48] {
            for b in [1usize, 64] {
                let cells = b * n * k;
                let name = format!("B={b} N={n} K={k}");
                if !a.only.is_empty() && !a.only.contains(&name) {
                    continue;
                }
                let skip = if cells > a.max_cells {
                    Some(format!("{cells} cells > --max-cells {}", a.max_cells))
                } else if ((n + 1) * (k + 1) * 4) as u64 > ctx.limits.max_buffer_size {
                    Some(format!(
                        "one video exceeds the adapter's largest buffer, {} bytes",
                        ctx.limits.max_buffer_size
                    ))
                } else {
                    None
                };
                if let Some(why) = skip {
                    eprintln!("{name}: skipped ({why})");
                    rows.push(
                        serde_json::json!({"case": name, "b": b, "n": n, "k": k, "skipped": why}),
                    );
                    continue;
                }
                eprintln!("{name}…");
                let c = synthetic_costs(b, n, k);
                let valid = vec![n; b];
                let cpu_plan = solve_batch(&c, b, n, k, &valid, &p)?;
                let gpu_plan = asot_gpu::solve_batch(&ctx, &c, b, n, k, &valid, &p)?;
                let max_abs = cpu_plan
                    .iter()
                    .zip(&gpu_plan)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                let argmax = |r: &[f32]| {
                    r.iter()
                        .enumerate()
                        .fold(
                            (0, f32::NEG_INFINITY),
                            |m, (j, &x)| if x > m.1 { (j, x) } else { m },
                        )
                        .0
                };
                let agree = cpu_plan
                    .chunks(k)
                    .zip(gpu_plan.chunks(k))
                    .filter(|(x, y)| argmax(x) == argmax(y))
                    .count() as f64
                    / (b * n) as f64;
                let (mut t_cpu, mut t_gpu) = (Vec::new(), Vec::new());
                for _ in 0..a.repeats.max(1) {
                    t_cpu.push(time_once(|| {
                        solve_batch(&c, b, n, k, &valid, &p).map(|_| ())
                    })?);
                    t_gpu.push(time_once(|| {
                        asot_gpu::solve_batch(&ctx, &c, b, n, k, &valid, &p).map(|_| ())
                    })?);
                }
                let (cpu_s, gpu_s) = (median(t_cpu), median(t_gpu));
                let transfer_s = transfer_seconds(&ctx, cells)?;
                let traffic = 16.0 * cells as f64 * p.iters as f64;
                let compute_s = (gpu_s - transfer_s).max(1e-9);
                rows.push(serde_json::json!({
                    "case": name, "b": b, "n": n, "k": k, "cpu_s": cpu_s, "gpu_s": gpu_s,
                    "transfer_s": transfer_s, "speedup": cpu_s / gpu_s,
                    "gpu_ns_per_cell_iter": compute_s / (cells as f64 * p.iters as f64) * 1e9,
                    "bandwidth_fraction": traffic / compute_s / bandwidth,
                    "max_abs_vs_cpu": max_abs, "argmax_agreement": agree,
                    "windowed": ((n + 1) * (k + 1) * 4) as u64 > ctx.max_binding(),
                }));
            }
        }
    }
    if a.json {
        let v = serde_json::json!({
            "adapter": adapter, "software": ctx.is_software(), "cpu_threads": threads,
            "copy_bandwidth_bytes_per_s": bandwidth, "iters": p.iters, "rows": rows,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "ASOT solver, CPU ({threads} threads) vs wgpu on {adapter}; median of {} runs in turns; \
         GPU time includes upload and read-back",
        a.repeats
    );
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>9} {:>12} {:>9} {:>10} {:>8}",
        "case",
        "CPU (s)",
        "wgpu (s)",
        "transfer",
        "speed-up",
        "ns/cell-it",
        "of BW",
        "max |Δ|",
        "argmax"
    );
    for r in &rows {
        let case = r["case"].as_str().unwrap_or("");
        if let Some(why) = r["skipped"].as_str() {
            println!("{case:<24} skipped: {why}");
            continue;
        }
        let f = |key: &str| r[key].as_f64().unwrap_or(f64::NAN);
        println!(
            "{case:<24} {:>10.4} {:>10.4} {:>10.4} {:>8.2}× {:>12.3} {:>8.1}% {:>10.1e} {:>7.2}%",
            f("cpu_s"),
            f("gpu_s"),
            f("transfer_s"),
            f("speedup"),
            f("gpu_ns_per_cell_iter"),
            100.0 * f("bandwidth_fraction"),
            f("max_abs_vs_cpu"),
            100.0 * f("argmax_agreement"),
        );
    }
    Ok(())
}
