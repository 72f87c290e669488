//! `clot-bench solver`: the ASOT solver (SPEC §3) against the PyTorch peer
//! (`bench/python/asot_peer.py`, conv1d for the GW term), on the same inputs in one run:
//! the real Breakfast salat affinity (5292×8, the reference's settings, checked against the golden
//! plan) when `../shared` is present, and synthetic costs with N ∈ {1 000, 10 000, 100 000} ×
//! K ∈ {8, 22, 48} (ε 0.07, α 0.4, r 0.04, λ 0.1).
//!
//! The two sides run in turns, one solve each (the peer process answers one request per line), so
//! that both see the same fast and slow moments of a shared machine; the table gives the median of
//! each side's runs. After each peer run the benchmark pauses 20 ms, so that torch's OpenMP threads
//! have stopped spinning before clot's run starts.
//!
//! Both sides use the same number of threads (all rayon threads; `torch.set_num_threads`). The
//! peer's conv1d costs O(N·K·N·r) per iteration (about 2.5 minutes per iteration at N = 100 000,
//! K = 48 here), so for N ≥ 100 000 the peer runs 1 iteration and the comparison is per
//! iteration; the table says so. The bound: one `exp` and one `ln` per cell and iteration, timed
//! on this CPU with the same math library, divided over the threads.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clot_datasets::npy::parse_npy;
use clot_stages::ot::{AsotParams, solve};

use crate::{median, time_once};

struct Args {
    max_n: usize,
    repeats: usize,
    shared: PathBuf,
    python: String,
    json: bool,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        max_n: 100_000,
        repeats: 3,
        shared: clot_datasets::shared::folder(),
        python: "python3".into(),
        json: false,
    };
    let mut it = args.iter().cloned();
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--max-n" => a.max_n = val()?.parse()?,
            "--repeats" => a.repeats = val()?.parse()?,
            "--shared" => a.shared = PathBuf::from(val()?),
            "--python" => a.python = val()?,
            "--json" => a.json = true,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

struct Case {
    name: String,
    n: usize,
    k: usize,
    cost: Vec<f32>,
    params: AsotParams,
    peer_iters: usize,
    check: Option<PathBuf>,
}

/// A cost with K temporal blocks plus deterministic texture, like 1 − cosine affinities.
fn synthetic_cost(n: usize, k: usize) -> Vec<f32> {
    synthetic_costs(1, n, k)
}

/// B such costs, the videos differing by a shift of the texture (video 0 is [`synthetic_cost`]).
pub(crate) fn synthetic_costs(b: usize, n: usize, k: usize) -> Vec<f32> {
    (0..b * n * k)
        .map(|y| {
            let (v, x) = (y / (n * k), y % (n * k));
            let (i, j) = (x / k, x % k);
            let on = (i * k / n) == j;
            let tex = ((x + 7919 * v) as f32 * 0.618_034).fract() - 0.5;
            1.0 - if on { 0.5 } else { 0.0 } - 0.3 * tex
        })
        .collect()
}

/// Seconds per `exp` + `ln` pair on one thread, with the vectorised functions the solver uses
/// (`clot_stages::ot::simd`), over an L1/L2-resident block like the solver's row chunks.
pub(crate) fn exp_ln_seconds() -> f64 {
    let n = 4096;
    let mut x: Vec<f32> = (0..n).map(|i| 1e-3 + (i as f32 / n as f32)).collect();
    let reps = 20_000;
    let t = std::time::Instant::now();
    for _ in 0..reps {
        clot_stages::ot::simd::ln_plus(&mut x, 1e-12);
        clot_stages::ot::simd::exp(&mut x);
        std::hint::black_box(&mut x);
    }
    t.elapsed().as_secs_f64() / (reps * n) as f64
}

pub fn run(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    let tmp = tempfile::tempdir()?;
    let mut cases = Vec::new();
    let salat = a
        .shared
        .join("data/asot_examples/affinity/P36_webcam01_P36_salat.npy");
    if salat.is_file() {
        let m = parse_npy(&std::fs::read(&salat)?, &salat)?;
        cases.push(Case {
            name: "salat 5292×8 (real)".into(),
            n: m.rows,
            k: m.cols,
            cost: m.values.iter().map(|v| 1.0 - v).collect(),
            params: AsotParams {
                eps: 0.01,
                alpha: 0.6,
                radius: 0.04,
                lambda_actions: 0.06,
                ..AsotParams::default()
            },
            peer_iters: 25,
            check: Some(a.shared.join("golden/asot_plan_P36_webcam01_P36_salat.npy")),
        });
    } else {
        eprintln!(
            "note: {} absent; skipping the real salat case",
            salat.display()
        );
    }
    for n in [1_000, 10_000, 100_000]
        .into_iter()
        .filter(|&n| n <= a.max_n)
    {
        for k in [8, 22, 48] {
            cases.push(Case {
                name: format!("synthetic {n}×{k}"),
                n,
                k,
                cost: synthetic_cost(n, k),
                params: AsotParams::default(),
                peer_iters: if n >= 100_000 { 1 } else { 25 },
                check: None,
            });
        }
    }
    let mut spec = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let path = tmp.path().join(format!("case{i}.npy"));
        clot_datasets::npy::write_npy_f32(&path, c.n, c.k, &c.cost)?;
        let p = &c.params;
        spec.push(serde_json::json!({
            "name": c.name, "path": path, "eps": p.eps, "alpha": p.alpha, "radius": p.radius,
            "lambda_actions": p.lambda_actions, "iters": c.peer_iters, "check": c.check,
        }));
    }
    let spec_path = tmp.path().join("cases.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec)?)?;
    let threads = rayon::current_num_threads();
    eprintln!("running clot and the PyTorch peer in turns (the N = 100 000 cases take minutes)…");
    let mut peer = Peer::start(&a.python, &spec_path, threads)?;
    let (mut ours, mut theirs, mut checks) = (Vec::new(), Vec::new(), Vec::new());
    for (i, c) in cases.iter().enumerate() {
        let p = &c.params;
        solve(&c.cost, c.n, c.k, c.n, p)?; // warm-up
        // one run of each side in turn, so that both see the same moments of a shared machine;
        // the peer's 1-iteration cases (minutes each) run once
        let (mut t_ours, mut t_peer) = (Vec::new(), Vec::new());
        for rep in 0..a.repeats.max(1) {
            t_ours.push(time_once(|| solve(&c.cost, c.n, c.k, c.n, p).map(|_| ()))?);
            if c.peer_iters > 1 || rep == 0 {
                t_peer.push(peer.request("run", i, "seconds")?);
                std::thread::sleep(std::time::Duration::from_millis(PAUSE_MS));
            }
        }
        ours.push(median(t_ours));
        theirs.push(median(t_peer));
        checks.push(match c.check {
            Some(_) => Some(peer.request("check", i, "max_abs_vs_reference")?),
            None => None,
        });
    }
    let torch = peer.finish()?;
    let bound = exp_ln_seconds() / threads as f64;

    let mut rows = Vec::new();
    for (((c, &s), &peer_s), check) in cases.iter().zip(&ours).zip(&theirs).zip(&checks) {
        let iters = c.params.iters as f64;
        let per_iter_ours = s / iters;
        let per_iter_peer = peer_s / c.peer_iters as f64;
        let cell_ns = per_iter_ours / (c.n * c.k) as f64 * 1e9;
        rows.push(serde_json::json!({
            "case": c.name, "clot_s": s, "clot_iters": c.params.iters, "peer_s": peer_s,
            "peer_iters": c.peer_iters, "speedup_per_iter": per_iter_peer / per_iter_ours,
            "clot_ns_per_cell_iter": cell_ns, "bound_ns_per_cell_iter": bound * 1e9,
            "peer_max_abs_vs_reference": check,
        }));
    }
    if a.json {
        let v = serde_json::json!({"threads": threads, "torch": torch, "rows": rows});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "ASOT solver, {threads} threads, median of {} runs taken in turns with the peer's; torch {}; bound = 1 exp + 1 ln per cell-iteration = {:.2} ns / {threads} threads",
        a.repeats,
        torch,
        bound * 1e9 * threads as f64
    );
    println!(
        "{:<24} {:>11} {:>14} {:>10} {:>14} {:>12}",
        "case", "clot (s)", "PyTorch (s)", "speed-up", "ns/cell-iter", "× bound"
    );
    for r in &rows {
        let peer_note = if r["peer_iters"] == 1 { " (1 it)" } else { "" };
        println!(
            "{:<24} {:>11.4} {:>7.3}{:<7} {:>9.1}× {:>14.3} {:>11.2}×",
            r["case"].as_str().unwrap_or(""),
            r["clot_s"].as_f64().unwrap_or(0.0),
            r["peer_s"].as_f64().unwrap_or(0.0),
            peer_note,
            r["speedup_per_iter"].as_f64().unwrap_or(0.0),
            r["clot_ns_per_cell_iter"].as_f64().unwrap_or(0.0),
            r["clot_ns_per_cell_iter"].as_f64().unwrap_or(0.0) / (bound * 1e9),
        );
    }
    if let Some(r) = rows
        .first()
        .filter(|r| !r["peer_max_abs_vs_reference"].is_null())
    {
        println!(
            "PyTorch peer vs golden salat plan: max abs {:.2e}",
            r["peer_max_abs_vs_reference"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

/// Pause after each peer run (see the module docs).
const PAUSE_MS: u64 = 20;

/// The PyTorch peer process, answering one request per line (`bench/python/asot_peer.py`).
struct Peer {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    torch: String,
}

impl Peer {
    fn start(python: &str, spec: &std::path::Path, threads: usize) -> Result<Peer> {
        use std::process::Stdio;
        let mut child = Command::new(python)
            .arg(crate::python_script("asot_peer.py"))
            .arg(spec)
            .arg(threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {python} (needs torch and numpy)"))?;
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        let stdout = std::io::BufReader::new(stdout.context("peer stdout")?);
        let mut peer = Peer {
            child,
            stdin,
            stdout,
            torch: String::new(),
        };
        let header = peer.read()?;
        peer.torch = header["torch"].as_str().unwrap_or("?").to_string();
        Ok(peer)
    }

    /// One line of JSON from the peer; its stderr in the error if it has stopped.
    fn read(&mut self) -> Result<serde_json::Value> {
        use std::io::{BufRead, Read};
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        if line.trim().is_empty() {
            let mut err = String::new();
            if let Some(e) = self.child.stderr.as_mut() {
                e.read_to_string(&mut err)?;
            }
            bail!("PyTorch peer stopped: {err}");
        }
        serde_json::from_str(&line).with_context(|| format!("peer answered {line:?}"))
    }

    /// Sends `verb case` and returns the number under `key` in the answer.
    fn request(&mut self, verb: &str, case: usize, key: &str) -> Result<f64> {
        use std::io::Write;
        let stdin = self.stdin.as_mut().context("peer stdin closed")?;
        writeln!(stdin, "{verb} {case}")?;
        stdin.flush()?;
        let v = self.read()?;
        v[key]
            .as_f64()
            .with_context(|| format!("peer answer {v} has no {key}"))
    }

    /// Closes the peer's input and waits for it to exit; returns the torch version it reported.
    fn finish(mut self) -> Result<String> {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        if !status.success() {
            bail!("PyTorch peer exited with {status}");
        }
        Ok(self.torch)
    }
}
