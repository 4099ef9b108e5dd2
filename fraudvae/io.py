"""Reading tables (CSV, gzip CSV, Parquet) with one-line errors, and writing them atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fraudvae.exceptions import DataFileError

__all__ = ["atomic_path", "file_format", "read_table", "write_table"]


def file_format(path: str | os.PathLike[str]) -> str:
    """``"csv"`` or ``"parquet"`` from the file name (a directory is read as Parquet)."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".parquet", ".pq")) or p.is_dir():
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".txt", ".tsv")):
        return "csv"
    raise DataFileError(f"Cannot tell the format of {str(path)!r}; expected a .csv, .csv.gz or .parquet file.")


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a whole table; every failure becomes a :class:`DataFileError` naming the file."""
    p = Path(path)
    if not p.exists():
        raise DataFileError(f"Data file {str(p)!r} does not exist; check the path.")
    fmt = file_format(p)
    try:
        if fmt == "parquet":
            return pq.read_table(p).to_pandas()
        # round_trip: correctly rounded floats, as pyarrow parses them in the batch job, so
        # every entry point sees the same numbers (pandas' fast parser is off by an ulp at times).
        return pd.read_csv(
            p, sep="\t" if p.name.lower().endswith(".tsv") else ",", low_memory=False, float_precision="round_trip"
        )
    except (OSError, ValueError, pa.ArrowException, UnicodeDecodeError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataFileError(f"Cannot read {str(p)!r} as {fmt.upper()}: {first}") from exc


def atomic_path(target: str | os.PathLike[str]) -> Path:
    """A fresh temporary path in the target's directory (rename it onto the target when complete)."""
    t = Path(target)
    t.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{t.name}.", suffix=".part", dir=t.parent)
    os.close(fd)
    return Path(name)


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write CSV or Parquet (by extension) so that ``path`` appears complete or not at all."""
    tmp = atomic_path(path)
    try:
        if file_format(path) == "parquet":
            pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp)
        else:
            df.to_csv(tmp, index=False, compression="gzip" if str(path).endswith(".gz") else None)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
