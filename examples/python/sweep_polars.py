"""Read a clot sweep's results with polars and print the best configuration.

    python3 examples/python/sweep_polars.py sweeps [--by mof]

The results folder is a Hive-partitioned Parquet dataset: sweep=<name>/trial=<id>/trial.parquet,
one row per trial, every setting its own typed column. This groups the trials that differ only
in their seed, averages them, and prints the best configuration per activity (by ground truth,
as papers choose, and by the final training loss, a label-free choice).
"""

import argparse
import sys

import polars as pl

# settings that identify a configuration (all but the seed): the columns after the metrics
OUTCOME = {
    "sweep", "trial", "sweep_name", "trial_id", "status", "error", "videos", "unscored_videos",
    "frames", "mof", "f1", "miou", "video_mof", "video_f1", "video_miou", "clusters", "collapsed",
    "final_loss", "final_ot_objective", "train_s", "eval_s", "wall_s", "peak_rss_mib", "seed",
    "f1_seed",
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--by", default="mof")
    a = ap.parse_args()
    trials = pl.read_parquet(f"{a.results}/**/trial.parquet", hive_partitioning=True)
    ok = trials.filter(pl.col("status") == "ok")
    print(f"{trials.height} trials, {ok.height} ok, sweeps: {sorted(trials['sweep'].unique())}")
    if ok.height == 0:
        return 1
    keys = [c for c in ok.columns if c not in OUTCOME]
    configs = (
        ok.group_by(keys)
        .agg(
            pl.len().alias("seeds"),
            pl.col(a.by).mean().alias(f"{a.by}_mean"),
            pl.col(a.by).std().alias(f"{a.by}_std"),
            pl.col("final_loss").mean().alias("loss_mean"),
        )
        .sort(f"{a.by}_mean", descending=True)
    )
    for (activity,), group in configs.group_by(["activity"], maintain_order=True):
        best = group.row(0, named=True)
        label_free = group.sort("loss_mean").row(0, named=True)
        print(
            f"{activity}: best by {a.by}: mode={best['mode']} rho={best['rho']:.3g} "
            f"{a.by}={best[f'{a.by}_mean']:.4f} over {best['seeds']} seeds; "
            f"by final loss: mode={label_free['mode']} rho={label_free['rho']:.3g} "
            f"{a.by}={label_free[f'{a.by}_mean']:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
