"""The one reader of data files: every row of a file or folder, with where it came from.

Inputs to generation, training data, and the data files a user replaces with a flag
(`--principles`, `--stances`) are all read here, so they accept the same formats and fail the
same way: with the file, the line (or element, or row) and the fix, never a traceback.

    .jsonl            one JSON value a line ("file.jsonl:12")
    .json             a JSON array ("file.json element 3"), or JSON lines under a .json name
    .csv              rows as dicts, header first ("file.csv:4")
    .txt and others   one string a non-blank line ("file.txt:2")
    .parquet          rows as dicts ("file.parquet row 3")
    a folder          a datasets.save_to_disk folder (its train split, or its first)

Text files are UTF-8, with or without a byte-order mark, with LF or CRLF line ends; a `.gz`
file is read as the file inside it (`train.jsonl.gz` as JSON lines). A broken JSON
line does not stop the reading: its row is a `BrokenRow`, so a caller can report every bad line
at once or stop at the first.

`iter_rows` gives the same rows one at a time: JSON lines, CSV and text files (gzipped or not)
are read a line at a time and Parquet a batch of rows at a time, so a file of any size is read in
constant memory; a `.json` array and a datasets folder are read whole.
"""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, NamedTuple

from selfalign.errors import InputError

PARQUET_BATCH = 4096  # rows of a Parquet file read at once


class Row(NamedTuple):  # a tuple: made a million times for a large file, a frozen dataclass costs 3x more
    where: str  # "file.jsonl:12", "file.json element 3", "file.parquet row 3"
    value: Any


@dataclass(frozen=True)
class BrokenRow:
    """A line that is not valid JSON; `problem` names the line and what is wrong."""

    problem: str


def read_rows(path: str | Path, fix: str = "each line must be one complete JSON object") -> list[Row]:
    """Every row of `path` (a file, or a datasets folder). `fix` ends the message of a broken line."""
    return list(iter_rows(path, fix))


def iter_rows(path: str | Path, fix: str = "each line must be one complete JSON object") -> Iterator[Row]:
    """The rows of `read_rows`, one at a time, reading line formats a line at a time."""
    p = Path(path)
    if p.is_dir():
        yield from _dataset_folder(p)
        return
    if not p.is_file():
        raise InputError(f"{p}: no such file or folder")
    suffix = _suffix(p)
    if suffix == ".parquet":
        yield from _parquet(p)
    elif suffix == ".json":
        yield from rows_of_text(read_text(p), str(p), suffix, fix)
    else:
        yield from _rows_of_lines(text_lines(p), str(p), suffix, fix)


def rows_of_text(text: str, where: str, suffix: str, fix: str = "each line must be one complete JSON object") -> list[Row]:
    """The rows of a text file's content, by the file's ending (see the module docstring)."""
    if suffix == ".json" and text.lstrip().startswith("["):
        return _json_array(text, where)
    if suffix == ".json" and len(_nonblank_lines(text)) > 1 and _is_one_object(text):
        raise InputError(f"{where}: holds one JSON object; a .json file holds a JSON array of objects (or one object a line)")
    return list(_rows_of_lines(enumerate(text.splitlines(), 1), where, suffix, fix))


def _rows_of_lines(lines: Iterable[tuple[int, str]], where: str, suffix: str, fix: str) -> Iterator[Row]:
    """The rows of a line format, from its numbered lines (`str.splitlines`'s lines, from 1)."""
    if suffix in (".jsonl", ".json"):
        return _json_lines(lines, where, fix)
    if suffix == ".csv":
        return _csv((line for _, line in lines), where)
    return (Row(f"{where}:{n}", line.strip()) for n, line in lines if line.strip())


def _suffix(path: Path) -> str:
    """The ending that says the format: `.jsonl` for `train.jsonl.gz`."""
    suffixes = [s.lower() for s in path.suffixes]
    return suffixes[-2] if len(suffixes) >= 2 and suffixes[-1] == ".gz" else path.suffix.lower()


def read_text(path: Path) -> str:
    """A text file as UTF-8 (a byte-order mark is dropped); other encodings stop with the line."""
    data = path.read_bytes()
    if path.suffix.lower() == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise InputError(f"{path}: not a readable gzip file ({exc}); decompress it, or download it again") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 (byte {data[exc.start]:#x}); re-save the file as UTF-8") from exc


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The numbered lines of a text file as `read_text(path).splitlines()` gives them, read a
    line at a time; the same errors, raised when the reading reaches them."""
    n = 0
    with _open_binary(path) as f:
        try:
            for lineno, raw in enumerate(f, 1):
                try:
                    text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(f"{path}:{lineno}: not UTF-8 (byte {raw[exc.start]:#x}); re-save the file as UTF-8") from exc
                for line in text.splitlines():  # "\r", "\f", "\u2028" ... end lines too, as in read_text's lines
                    n += 1
                    yield n, line
        except (OSError, EOFError) as exc:
            if path.suffix.lower() != ".gz":
                raise
            raise InputError(f"{path}: not a readable gzip file ({exc}); decompress it, or download it again") from exc


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")  # type: ignore[return-value]


def _nonblank_lines(text: str) -> list[tuple[int, str]]:
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def json_error(exc: json.JSONDecodeError) -> str:
    """What is wrong and where on its line: "Unterminated string starting at column 14" (json's
    own message may end in "at" already: "Unterminated string starting at")."""
    return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"


def _json_lines(lines: Iterable[tuple[int, str]], where: str, fix: str) -> Iterator[Row]:
    loads = json.loads
    for lineno, line in lines:
        if line and not line.isspace():
            try:
                yield Row(f"{where}:{lineno}", loads(line))
            except json.JSONDecodeError as exc:
                yield Row(f"{where}:{lineno}", BrokenRow(f"{where}:{lineno}: broken JSON ({json_error(exc)}); {fix}"))


def _json_array(text: str, where: str) -> list[Row]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where}:{exc.lineno}: broken JSON ({json_error(exc)}); a .json file holds one JSON "
            "array of objects (or name it .jsonl with one object a line)"
        ) from exc
    return [Row(f"{where} element {i}", row) for i, row in enumerate(data, 1)]


def _is_one_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _csv(lines: Iterable[str], where: str) -> Iterator[Row]:
    reader = csv.DictReader(lines)
    return (Row(f"{where}:{reader.line_num}", row) for row in reader)


def csv_header(path: Path) -> list[str] | None:
    """A CSV file's column names, reading no further than its header."""
    return csv.DictReader(line for _, line in text_lines(path)).fieldnames  # type: ignore[return-value]


def _parquet(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH)
        n = 0
        for batch in batches:
            for row in batch.to_pylist():
                n += 1
                yield Row(f"{path} row {n}", row)
    except InputError:
        raise
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise InputError(f"{path}: not a readable Parquet file ({exc}); re-write it, or use JSONL") from exc


def _dataset_folder(path: Path) -> list[Row]:
    from datasets import load_from_disk

    try:
        data = load_from_disk(str(path))
    except Exception as exc:  # datasets raises several kinds for a folder it cannot read
        raise InputError(
            f"{path}: not a readable datasets folder ({type(exc).__name__}: {exc}); save it again with "
            "Dataset.save_to_disk, or give a .jsonl or .parquet file"
        ) from exc
    if hasattr(data, "keys"):  # a DatasetDict: the train split, or the first one
        data = data["train"] if "train" in data else data[next(iter(data.keys()))]
    return [Row(f"{path} row {i}", row) for i, row in enumerate(data, 1)]
