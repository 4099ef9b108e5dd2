"""Reading tables (CSV, gzip CSV, Parquet) with one-line errors, and writing them atomically."""

from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fraudvae.data.textparse import decode_column, printable
from fraudvae.exceptions import DataFileError

__all__ = [
    "MalformedLines",
    "TableWriter",
    "atomic_path",
    "check_header",
    "csv_header",
    "csv_options",
    "describe_csv_error",
    "file_format",
    "line_numbers",
    "read_csv_bytes",
    "read_table",
    "typed_frame",
    "write_table",
]


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process's umask, read once (reading it means setting it, which is not thread-safe).
_UMASK = _umask()


def atomic_path(target: str | os.PathLike[str]) -> Path:
    """A fresh temporary path in the target's directory (rename it onto the target when complete).

    ``mkstemp`` creates the file with mode 0600; it is given the mode a plain ``open``
    would have given it (0666 less the umask), so the renamed output is readable as
    any other file its owner writes.
    """
    t = Path(target)
    t.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{t.name}.", suffix=".part", dir=t.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
    finally:
        os.close(fd)
    return Path(name)


# ---------------------------------------------------------------------- CSV text
class MalformedLines:
    """Lines with the wrong number of fields, collected (not fatal) while arrow parses.

    Arrow's ``invalid_row_handler`` reports each with its line number (the header is
    line 1); the line is skipped and kept here with the reason, so the batch job writes
    it to the rejects file and the service names it in a 422.
    """

    def __init__(self) -> None:
        self.lines: list[int] = []
        self.reasons: list[str] = []

    def __call__(self, row: Any) -> str:
        self.lines.append(int(row.number) if row.number is not None else -1)
        self.reasons.append(
            f"expected {row.expected_columns} fields, found {row.actual_columns}: {printable(row.text, 80)}"
        )
        return "skip"

    def __len__(self) -> int:
        return len(self.lines)


#: Arrow's own message when it could not hand a malformed line to the handler: pyarrow
#: decodes the line's text before calling it, and a line that is not UTF-8 fails there
#: (found by benchmarks/fuzz.py; pyarrow reports it as an "unraisable" exception).
_UNHANDLED_ROW = re.compile(r"CSV parse error: Row #(\d+): Expected (\d+) columns, got (\d+)")


def describe_csv_error(exc: Exception, near: int) -> str:
    """Arrow's read error in our words, with our line number."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    found = _UNHANDLED_ROW.search(text)
    if found:
        return (
            f"line {found.group(1)} has {found.group(3)} fields, expected {found.group(2)}, and is not valid "
            "UTF-8 text; fix or remove that line (a line with only one of these faults is rejected, not fatal)"
        )
    if "straddling" in text:
        return (
            f"near line {near}, a line is longer than the read block (expected transaction rows of at most "
            f"{CSV_BLOCK >> 20} MiB; look for a missing closing quote or an oversized value)"
        )
    return f"near line {near}: {printable(text, 300)}"


#: Arrow's CSV block in the batch job: one line (one record) must fit in it.
CSV_BLOCK = 1 << 20


def line_numbers(first_row: int, n: int, skipped: list[int]) -> np.ndarray:
    """Line numbers of data rows ``first_row .. first_row + n - 1`` (0-based, in read order).

    Row ``r`` sits on line ``r + 2`` (after the header) plus one per malformed line that
    arrow skipped before it; ``skipped`` is the sorted list of those lines so far.
    """
    rows = np.arange(first_row, first_row + n, dtype=np.int64)
    if not skipped:
        return rows + 2
    # The j-th skipped line stands where row (line - 2 - j) would have been.
    at_row = np.asarray(skipped, dtype=np.int64) - 2 - np.arange(len(skipped))
    return rows + 2 + np.searchsorted(at_row, rows, side="right")


def csv_options(
    name: str, header: list[str] | None, block_size: int, malformed: MalformedLines
) -> tuple[Any, Any, Any]:
    """Arrow read, parse and convert options: every column as raw bytes, bad lines collected.

    Bytes, not text: a value that is not UTF-8 must reject its row, not the whole block
    (see :func:`fraudvae.data.textparse.decode_column`).
    """
    read = pacsv.ReadOptions(block_size=block_size, use_threads=False)
    parse = pacsv.ParseOptions(delimiter="\t" if name.lower().endswith(".tsv") else ",", invalid_row_handler=malformed)
    convert = pacsv.ConvertOptions(
        column_types={c: pa.binary() for c in header} if header is not None else None,
        strings_can_be_null=True,
    )
    return read, parse, convert


def check_header(names: list[str], where: str) -> None:
    """Refuse a header that names a column twice (arrow would keep only one of them)."""
    twice = [n for n, count in Counter(names).items() if count > 1]
    if twice:
        raise DataFileError(
            f"{where} names column(s) {sorted(set(twice))[:10]} more than once; expected each column once. "
            "Rename or remove the duplicates."
        )


def read_csv_bytes(body: bytes, name: str = "body.csv") -> tuple[pa.Table, MalformedLines]:
    """A whole CSV document held in memory (the service's ``text/csv`` body).

    The block is as large as the body, so one long cell is no error; malformed lines
    are returned, not raised.
    """
    malformed = MalformedLines()
    read, parse, _ = csv_options(name, None, max(len(body) + 1, 1 << 16), malformed)
    try:
        header = _header(body, read, name)
        check_header(header, "The CSV header")
        _, _, convert = csv_options(name, header, read.block_size, malformed)
        table = pacsv.read_csv(pa.BufferReader(body), read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(f"Cannot read the CSV: {describe_csv_error(exc, 0)}") from exc
    return table, malformed


def _header(body: bytes, read: Any, name: str) -> list[str]:
    """The column names, parsed from the first line only (the body is parsed once, later).

    Malformed lines met here go to a collector of their own, so the full read reports
    each once. A header holding a quoted line break does not parse alone: then the
    whole body is read for it.
    """
    ends = [i for i in (body.find(b"\n"), body.find(b"\r")) if i >= 0]
    first = body[: min(ends) + 1] if ends else body
    _, parse, _ = csv_options(name, None, read.block_size, MalformedLines())
    try:
        return csv_header(pa.BufferReader(first), read, parse, "the CSV")
    except pa.ArrowInvalid:
        return csv_header(pa.BufferReader(body), read, parse, "the CSV")


def csv_header(source: Any, read: Any, parse: Any, where: str) -> list[str]:
    """The column names of a CSV source; a header that is not UTF-8 is a one-line error."""
    with pacsv.open_csv(source, read_options=read, parse_options=parse) as reader:
        try:
            return list(reader.schema.names)
        except UnicodeDecodeError as exc:
            raise DataFileError(
                f"The header of {where} is not valid UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r} "
                f"at position {exc.start}); expected column names as UTF-8. Re-save the file as UTF-8."
            ) from exc


def typed_frame(table: pa.Table, kinds: Mapping[str, str]) -> pd.DataFrame:
    """Raw CSV columns to pandas: numbers cast by arrow when every value parses (the fast path).

    Bytes are decoded first (:func:`~fraudvae.data.textparse.decode_column`). A numeric
    column with an unparseable value stays text; ``Schema.validate_frame`` then names
    the bad rows (parsing them safely).
    """
    columns: dict[str, Any] = {}
    for name in table.column_names:
        col = decode_column(table.column(name))
        if isinstance(col, pd.Series):
            columns[name] = col
            continue
        if kinds.get(name) in ("numeric", "binary"):
            # Numbers, or booleans as CSV files write them (true/false, any case): arrow
            # reads both as ``Schema.validate_frame`` would, without a Python loop.
            for target in (pa.float64(), pa.bool_()):
                try:
                    values = pc.cast(pc.cast(col, target), pa.float64()).to_numpy(zero_copy_only=False)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    continue
                if not np.isinf(values).any():  # else kept as text, so a reject echoes what was sent
                    columns[name] = values
                break
            if name in columns:
                continue
        columns[name] = col.to_pandas()
    return pd.DataFrame(columns)


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


class TableWriter:
    """Appends Arrow tables to a temporary file (CSV, CSV.gz or Parquet by the name); ``commit`` renames it onto the target."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.tmp = atomic_path(target)
        self.fmt = file_format(target) if target.suffix or target.name.endswith(".gz") else "csv"
        self._writer: Any = None
        self._sink: Any = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            if self.fmt == "parquet":
                self._writer = pq.ParquetWriter(self.tmp, table.schema)
            else:
                self._sink = (
                    pa.CompressedOutputStream(str(self.tmp), "gzip")
                    if self.target.name.endswith(".gz")
                    else pa.OSFile(str(self.tmp), "wb")
                )
                self._writer = pacsv.CSVWriter(self._sink, table.schema)
        self._writer.write_table(table)

    def commit(self) -> None:
        self.close()
        self.tmp.replace(self.target)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def discard(self) -> None:
        self.close()
        self.tmp.unlink(missing_ok=True)
