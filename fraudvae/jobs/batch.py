"""``fraudvae score``: stream a CSV or Parquet file of any size through a model.

Chunks are read with pyarrow, scored by the two halves of :meth:`VAEDetector.score_frame`
(the function the HTTP service uses: validation and encoding in the reader thread, the
network in parallel workers) and appended to a temporary file beside the output, renamed
into place only when the whole input has been scored: a killed job leaves no partial output,
and a re-run writes the same bytes. Rows that cannot be scored go to ``OUT.rejects.csv``
with their line number and the reason; none is dropped silently.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import torch

from fraudvae.data.io import (
    CSV_BLOCK,
    MalformedLines,
    TableWriter,
    check_header,
    csv_header,
    csv_options,
    describe_csv_error,
    file_format,
    line_numbers,
    typed_frame,
)
from fraudvae.data.textparse import printable
from fraudvae.detection.artifact import model_version
from fraudvae.detection.contract import REJECT_FILE_REASON, REJECT_LINE, output_columns, reject_reason, score_columns
from fraudvae.detection.detector import VAEDetector
from fraudvae.detection.engine import PreparedRows
from fraudvae.detection.results import ScoreResult
from fraudvae.exceptions import ConfigurationError, DataFileError, EventOrderError
from fraudvae.features.behaviour import input_columns, model_spec, with_features
from fraudvae.features.spec import FeatureSpec
from fraudvae.features.stream import FeatureStream
from fraudvae.model.threads import available_cpus, requested_threads
from fraudvae.monitor.store import score_log_table

__all__ = ["BatchSummary", "score_file"]

#: Arrow type of each logical type of the output contract.
_ARROW = {"float64": pa.float64(), "bool": pa.bool_(), "string": pa.string()}
#: Most chunks scored at once (one thread each); more would only hold more chunks in memory.
_MAX_WORKERS = 4


@dataclass
class BatchSummary:
    rows_read: int = 0
    rows_scored: int = 0
    rows_flagged: int = 0
    rows_rejected: int = 0
    seconds: float = 0.0

    @property
    def reject_rate(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    def line(self) -> str:
        rate = self.rows_read / self.seconds if self.seconds else 0.0
        return (
            f"rows read {self.rows_read}, scored {self.rows_scored}, flagged {self.rows_flagged}, "
            f"rejected {self.rows_rejected}, {self.seconds:.1f}s ({rate:,.0f} rows/s)"
        )


# ---------------------------------------------------------------------- reading
#: Compression by file suffix, as pyarrow infers it when it opens a path itself.
_CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}


@dataclass
class Chunk:
    """A chunk of input rows, the line number of each, and the malformed lines met reading it."""

    frame: pd.DataFrame
    lines: np.ndarray
    share_read: float
    malformed: list[tuple[int, str]]


def _label_columns(path: Path, spec: FeatureSpec | None, needed: list[str]) -> list[str]:
    """The label-risk label columns ``path`` has (read when present: new traffic often has none)."""
    if spec is None or not spec.label_risk:
        return []
    try:
        names = pq.read_schema(path).names if file_format(path) == "parquet" else list(pd.read_csv(path, nrows=0))
    except (OSError, ValueError, pa.ArrowInvalid, pd.errors.ParserError):
        return []  # the reader itself says what is wrong with the file
    return sorted(c for c in spec.label_columns() if c in names and c not in needed)


def _chunks(path: Path, needed: list[str], kinds: Mapping[str, str], chunk_rows: int) -> Iterator[Chunk]:
    """Yield the input in chunks of ``chunk_rows`` rows.

    CSV line numbers count the header as line 1 and skip nothing: a line with the wrong
    number of fields is reported in ``malformed`` (to be rejected), and the rows after it
    keep their true line numbers. A Parquet "line" is the row number from 1. The share
    read drives the progress bar's ETA: rows for Parquet, bytes of the (possibly
    compressed) file for CSV.
    """
    if file_format(path) == "parquet":
        try:
            # pre_buffer=False: the pre-buffer cache keeps every row group read until the
            # file is closed, so memory would grow with the file.
            parquet = pq.ParquetFile(path, pre_buffer=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataFileError(
                f"Cannot read {str(path)!r} as Parquet: {printable(str(exc).splitlines()[0], 200)}"
            ) from exc
        missing = [c for c in needed if c not in parquet.schema_arrow.names]
        if missing:
            raise DataFileError(f"{str(path)!r} lacks column(s) {missing}; the job needs {needed}.")
        total = max(parquet.metadata.num_rows, 1)
        line = 1
        # Row group by row group: a dataset scan reads 16 batches ahead.
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=needed):
            # Binary columns (bytes that may not be UTF-8) go through the same decoding as CSV.
            frame = typed_frame(pa.Table.from_batches([batch]), kinds)
            yield Chunk(frame, np.arange(line, line + batch.num_rows), (line - 1 + batch.num_rows) / total, [])
            line += batch.num_rows
        return
    # The header is read with the same block as the rows: a long first row must not fail
    # here when the main read would take it. Malformed lines met here are dropped (the
    # main read meets them again).
    read, parse, _ = csv_options(path.name, None, CSV_BLOCK, MalformedLines())
    try:
        header = csv_header(str(path), read, parse, repr(str(path)))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(f"Cannot read {str(path)!r} as CSV: {describe_csv_error(exc, 2)}") from exc
    check_header(header, f"The header of {str(path)!r}")
    missing = [c for c in needed if c not in header]
    if missing:
        raise DataFileError(f"{str(path)!r} lacks column(s) {missing}; the job needs {needed}.")
    malformed = MalformedLines()
    read, parse, convert = csv_options(path.name, header, CSV_BLOCK, malformed)
    convert.include_columns = needed
    rows_done = 0  # data rows yielded so far
    reported = 0  # malformed lines yielded so far
    pending: list[pa.RecordBatch] = []
    pending_rows = 0

    def chunk(table: pa.Table, share: float) -> Chunk:
        nonlocal rows_done, reported
        lines = line_numbers(rows_done, table.num_rows, malformed.lines)
        rows_done += table.num_rows
        last = int(lines[-1]) if len(lines) else 1 << 62
        new = [
            (ln, why)
            for ln, why in zip(malformed.lines[reported:], malformed.reasons[reported:], strict=True)
            if ln < last or share >= 1.0
        ]
        reported += len(new)
        return Chunk(typed_frame(table, kinds), lines, share, new)

    # The raw file is opened here (not by pyarrow from the path) so that its position
    # tells how much of a compressed file has been read.
    raw = pa.OSFile(str(path))
    size = max(raw.size(), 1)
    codec = _CODECS.get(path.suffix.lower())
    source = pa.CompressedInputStream(raw, codec) if codec else raw
    try:
        # Opening parses the first block already, so it belongs inside the ``try``.
        reader = pacsv.open_csv(source, read_options=read, parse_options=parse, convert_options=convert)
        for batch in reader:
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= chunk_rows:
                table = pa.Table.from_batches(pending)
                for start in range(0, table.num_rows - chunk_rows + 1, chunk_rows):
                    yield chunk(table.slice(start, chunk_rows), raw.tell() / size)
                rest = table.num_rows % chunk_rows
                pending = table.slice(table.num_rows - rest).to_batches() if rest else []
                pending_rows = rest
    except (pa.ArrowInvalid, OSError) as exc:
        near = int(line_numbers(rows_done + pending_rows, 1, malformed.lines)[0])
        raise DataFileError(f"Cannot read {str(path)!r}: {describe_csv_error(exc, near)}") from exc
    finally:
        source.close()
        raw.close()
    if pending_rows or len(malformed) > reported:
        yield chunk(pa.Table.from_batches(pending, schema=reader.schema), 1.0)


_DONE = object()


def _prefetched(items: Iterator[Any]) -> Iterator[Any]:
    """Run ``items`` one step ahead in a background thread.

    Arrow parses the next chunk (it releases the GIL) while the current one is scored.
    At most one item waits in the queue, so memory stays one chunk above a plain loop.
    An exception in the reader is raised here, in the consumer; a consumer that stops
    early stops the reader too.
    """
    buffer: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            buffer.put((_DONE, exc))

    reader = threading.Thread(target=produce, name="fraudvae-reader", daemon=True)
    reader.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            with contextlib.suppress(queue.Empty):
                buffer.get_nowait()
            reader.join(timeout=0.1)


# ---------------------------------------------------------------------- writing
def _in_order(stream: FeatureStream, part: Chunk, path: str | Path) -> pd.DataFrame:
    """The chunk's behavioural features; an order error names the file and the line."""
    try:
        return stream.update(part.frame, lines=part.lines)
    except EventOrderError as exc:
        raise EventOrderError(f"{str(path)!r}: {exc}", position=exc.position) from exc


def _score(det: VAEDetector, rows: PreparedRows, explain_top_k: int) -> ScoreResult:
    return det.score_prepared(rows, sampled=False, explain_top_k=explain_top_k)


def score_file(
    model_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    chunk_rows: int = 20_000,
    keep_columns: list[str] | None = None,
    explain_top_k: int = 0,
    max_reject_rate: float = 0.0,
    progress: bool = False,
    history: str | Path | None = None,
    score_log: str | Path | None = None,
    id_column: str | None = None,
) -> BatchSummary:
    """Score a file chunk by chunk; see the module docstring. Returns the summary.

    A model trained with a feature spec gets its derived columns from one
    :class:`~fraudvae.features.stream.FeatureStream` fed the chunks in file order, which
    carries each entity's recent events from chunk to chunk; ``history`` (earlier
    events, read first and not scored) is the past of the input's first events. Both
    files must be in time order: an event earlier than one before it stops the job
    (nothing is written) with its line.

    The output is committed only when the reject rate is within ``max_reject_rate``;
    otherwise the rejects file is kept (it says why) and the output is not written.

    ``score_log`` (Parquet) remembers every scored event as the service's score log does
    (:func:`fraudvae.monitor.store.score_log_table`), named by ``id_column``; it is
    committed with the output.
    """
    if chunk_rows < 1:
        raise ConfigurationError(f"--chunk-rows {chunk_rows} is invalid; expected a positive number of rows.")
    if not 0.0 <= max_reject_rate <= 1.0:
        raise ConfigurationError(f"--max-reject-rate {max_reject_rate} is invalid; expected a share between 0 and 1.")
    started = time.perf_counter()
    det = VAEDetector.load(str(model_dir))
    src, dst = Path(input_path), Path(output_path)
    if not src.exists():
        raise DataFileError(f"Input {str(src)!r} does not exist; check the path.")
    if dst.resolve() == src.resolve():
        raise ConfigurationError("--output is the same file as --input; choose another path.")
    keep = list(keep_columns or [])
    if id_column is not None and score_log is None:
        raise ConfigurationError("--id-column names the events of the score log; pass --score-log too.")
    spec = model_spec(det.extra_documents_)
    if history is not None and spec is None:
        raise ConfigurationError(
            f"--history gives past events to a model trained with --features; {str(model_dir)!r} has no feature spec."
        )
    if history is not None and not Path(history).exists():
        raise DataFileError(f"History {str(history)!r} does not exist; check the path.")
    needed = list(dict.fromkeys([*input_columns(det.schema_.names, spec), *keep, *([id_column] if id_column else [])]))
    needed += _label_columns(src, spec, needed)
    kinds = {c.name: c.kind for c in det.schema_.columns}
    stream = FeatureStream(spec, in_time_order=True) if spec is not None else None
    rejects_path = dst.with_name(dst.name + ".rejects.csv")
    out, rejects = TableWriter(dst), TableWriter(rejects_path)
    log = TableWriter(Path(score_log)) if score_log is not None else None
    version = model_version(model_dir)
    summary = BatchSummary()
    bar = _progress(src) if progress else None

    def emit(part: Chunk, result: ScoreResult) -> None:
        frame = part.frame
        positions = result.row_positions if result.row_positions is not None else np.arange(len(frame))
        kept = {c: frame[c].to_numpy()[positions] for c in keep}
        out.write(pa.table({**kept, **score_columns(result, explain_top_k)}))
        if log is not None:
            ids = frame[id_column].to_numpy()[positions] if id_column else None
            log.write(score_log_table(result, ids, version, explain_top_k))
        bad = sorted(
            [(int(part.lines[r]), reject_reason(result.rejected[r])) for r in result.rejected] + part.malformed
        )
        if bad:
            rejects.write(
                pa.table(
                    {
                        REJECT_LINE: pa.array([ln for ln, _ in bad], pa.int64()),
                        REJECT_FILE_REASON: pa.array([why for _, why in bad], pa.string()),
                    }
                )
            )
        summary.rows_read += len(frame) + len(part.malformed)
        summary.rows_scored += len(result)
        summary.rows_flagged += int(np.sum(result.is_anomaly))
        summary.rows_rejected += len(result.rejected) + len(part.malformed)
        if bar is not None:
            _advance(bar, len(frame), part.share_read)

    # The two halves of ``score_frame`` in a pipeline: the reader thread parses,
    # validates and encodes (arrow and pandas) while ``workers`` threads score earlier
    # chunks (torch, which releases the GIL), each single-threaded: whole chunks in
    # parallel keep the cores busier than one chunk's operations split across them.
    # Scores do not depend on the thread count (see ``fraudvae.model.scoring``).
    threads = torch.get_num_threads()
    # One single-threaded worker per CPU this process may use (affinity, cgroup quota),
    # unless FRAUDVAE_TORCH_THREADS / --threads says otherwise.
    workers = max(1, min(requested_threads(None) or available_cpus(), _MAX_WORKERS))

    def events() -> Iterator[Chunk]:
        if stream is None:
            yield from _chunks(src, needed, kinds, chunk_rows)
            return
        if history is not None:
            used = sorted(stream.spec.columns_used())
            for past in _chunks(Path(history), used + _label_columns(Path(history), spec, used), kinds, chunk_rows):
                _in_order(stream, past, history)
        for part in _chunks(src, needed, kinds, chunk_rows):
            part.frame = with_features(part.frame, _in_order(stream, part, src))
            yield part

    prepared = ((part, det.prepare(part.frame, errors="collect", warn_extra=False)) for part in events())
    try:
        torch.set_num_threads(1)
        with ThreadPoolExecutor(workers, "fraudvae-score", torch.set_num_threads, (1,)) as pool:
            in_flight: deque[tuple[Chunk, Future[ScoreResult]]] = deque()
            for part, rows in _prefetched(prepared):
                in_flight.append((part, pool.submit(_score, det, rows, explain_top_k)))
                if len(in_flight) >= workers:  # written in input order
                    part, scored = in_flight.popleft()
                    emit(part, scored.result())
            while in_flight:
                part, scored = in_flight.popleft()
                emit(part, scored.result())
    except BaseException:
        out.discard()
        rejects.discard()
        if log is not None:
            log.discard()
        raise
    finally:
        torch.set_num_threads(threads)
        if bar is not None:
            bar.close()
    summary.seconds = time.perf_counter() - started
    if summary.rows_rejected:
        rejects.commit()
    else:
        rejects.discard()
        rejects_path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
    if summary.reject_rate > max_reject_rate:
        out.discard()
        if log is not None:
            log.discard()
    else:
        if log is not None:
            if log._writer is None:
                log.write(score_log_table(None, None, version, 0))
            log.commit()
        if out._writer is None:  # an empty input still yields a valid empty output
            columns = {c: pa.string() for c in keep} | {
                c: _ARROW[kind] for c, kind in output_columns(explain_top_k).items()
            }
            out.write(pa.table({c: pa.array([], t) for c, t in columns.items()}))
        out.commit()
    return summary


def _progress(src: Path) -> Any:
    """A rows/s bar on a terminal (``None`` elsewhere: logs get the summary line only)."""
    from tqdm import tqdm

    if not sys.stderr.isatty():
        return None
    return tqdm(desc="scoring", unit=" rows", unit_scale=True, file=sys.stderr, dynamic_ncols=True)


def _advance(bar: Any, rows: int, share_read: float) -> None:
    """Count ``rows`` and re-estimate the total from the share of the input read (for the ETA)."""
    done = bar.n + rows
    if 0.0 < share_read < 1.0:
        bar.total = max(done, round(done / share_read))
    elif share_read >= 1.0:
        bar.total = done
    bar.update(rows)
