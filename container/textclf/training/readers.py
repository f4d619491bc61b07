"""One data file as a stream of records: CSV, TSV, JSON Lines or a JSON array, each optionally gzipped.

Files are read row by row, so a very long text is held about once, never as part of a whole-file string (a JSON
array, one value spanning the file, is the exception: it is parsed whole). A file that cannot be read says so with
its name and line (see faults.py), not as an internal error.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserError
from . import faults

READERS_BY_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
# The csv module's default (131,072 characters) refuses long texts. A field longer than this is almost always
# a quote left open, which would otherwise swallow the rest of the file into memory.
CSV_FIELD_LIMIT = 64 * 1024 * 1024
GZIP_FAULTS = (EOFError, zlib.error, gzip.BadGzipFile)
_FIRST_NON_SPACE = re.compile(r"\s*(\S)")


def data_files(directory: Path) -> list[Path]:
    """Readable data files under `directory`, in a stable order; hidden files (e.g. S3 markers) are ignored."""
    found = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(directory).parts):
            continue
        if reader_kind(path) is not None:
            found.append(path)
    return found


def reader_kind(path: Path) -> str | None:
    """csv, tsv or jsonl from the name (a trailing .gz aside); None for a file this image does not read."""
    name = path.name.lower().removesuffix(".gz")
    return READERS_BY_SUFFIX.get(Path(name).suffix)


def _open_binary(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def iter_records(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, record) pairs from one file; UserError naming the file when it cannot be read."""
    csv.field_size_limit(CSV_FIELD_LIMIT)
    last_line = 0  # of the last CSV row read: a row may span lines, and an error is best placed where it starts
    try:
        with io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", newline="") as handle:
            if reader_kind(path) in ("csv", "tsv"):
                reader = csv.DictReader(handle, delimiter="\t" if reader_kind(path) == "tsv" else ",")
                for row in reader:
                    last_line = reader.line_num
                    yield last_line, row
            else:
                yield from _json_records(path, handle)
    except UnicodeDecodeError:
        raise faults.not_utf8(path, *_first_undecodable_line(path)) from None
    except GZIP_FAULTS as exc:
        raise faults.bad_gzip(path, exc) from None
    except csv.Error as exc:
        raise faults.bad_csv(path, last_line + 1, exc, CSV_FIELD_LIMIT) from None


def _json_records(path: Path, handle: io.TextIOBase) -> Iterator[tuple[int, object]]:
    """JSON Lines one line at a time; a file whose first character is `[` is one JSON array."""
    seen_content = False
    for number, line in enumerate(handle, start=1):
        first = _FIRST_NON_SPACE.match(line)  # a match, not strip(): no copy of a long line
        if first is None:
            continue
        if not seen_content and first.group(1) == "[":
            yield from enumerate(_loads(path, line + handle.read(), number), start=1)
            return
        seen_content = True
        yield number, _loads(path, line, number)


def _loads(path: Path, text: str, line: int) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path.name} line {line} is not valid JSON ({exc.msg}).",
            "Write one JSON object per line (JSON Lines), or use a .csv file.",
        ) from None


def _first_undecodable_line(path: Path) -> tuple[int | None, int | None, int | None]:
    """(line, byte within the line, byte value) of the first bytes that are not UTF-8; Nones if none is found.

    Only on the failure path: a decoder error knows its place in a buffer, not in the file. A line break is never
    part of a multi-byte UTF-8 character, so each line can be checked on its own.
    """
    try:
        with _open_binary(path) as raw:
            for number, line in enumerate(raw, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return number, exc.start + 1, line[exc.start]
    except (OSError, *GZIP_FAULTS):
        pass
    return None, None, None
