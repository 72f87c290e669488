"""Read a clot sweep's results with DuckDB and print the best configuration per activity.

    python3 examples/python/sweep_duckdb.py sweeps
"""

import sys

import duckdb


def main() -> int:
    results = sys.argv[1] if len(sys.argv) > 1 else "sweeps"
    con = duckdb.connect()
    rows = con.execute(
        """
        WITH configs AS (
            SELECT sweep, activity, mode, rho, without, count(*) AS seeds,
                   avg(mof) AS mof, stddev_samp(mof) AS mof_std, avg(final_loss) AS loss
            FROM read_parquet(? || '/**/trial.parquet', hive_partitioning = true)
            WHERE status = 'ok'
            GROUP BY ALL
        )
        SELECT * FROM configs
        QUALIFY row_number() OVER (PARTITION BY sweep, activity ORDER BY mof DESC) = 1
        ORDER BY sweep, activity
        """,
        [results],
    ).fetchall()
    if not rows:
        print("no successful trials")
        return 1
    for sweep, activity, mode, rho, without, seeds, mof, mof_std, loss in rows:
        std = f" ± {mof_std:.4f}" if mof_std is not None else ""
        print(
            f"{sweep} / {activity}: best mode={mode} rho={rho:.3g} without=[{without}] "
            f"MoF {mof:.4f}{std} over {seeds} seeds (final loss {loss:.4f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
