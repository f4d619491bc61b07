"""Faults of the job's data files and of its volume, told as what was wrong and what to change.

Python reports them as UnicodeDecodeError, EOFError, csv.Error or a bare OSError (and libraries that write files
as errors of their own), which name neither the file nor who can fix it. Every such message is written here.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError

UTF8_REMEDY = (
    "Save it as UTF-8 text (in Excel: 'CSV UTF-8'; or `iconv -f latin1 -t utf-8 in.csv > out.csv`), or remove "
    "it from the channel if it is not data, and upload it again."
)
VOLUME_REMEDY = (
    "Raise VolumeSizeInGB of the training job (checkpoints, the model and the output share that volume), or write "
    "fewer, smaller checkpoints (a higher checkpoint_steps)."
)
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# Libraries that write files (safetensors, torch) wrap the operating system's error in their own exception; some
# keep its text, torch.save keeps nothing. A volume with less than this left after a failed write was full.
DISK_FULL_WORDS = ("No space left on device", "os error 28", "Disk quota exceeded")
NEARLY_FULL_BYTES = 1024 * 1024


def not_utf8(path: Path, line: int | None, column: int | None, byte: int | None) -> UserError:
    where = f"{path.name} line {line}" if line else path.name
    detail = f" (byte 0x{byte:02x} at byte {column} of the line)" if byte is not None else ""
    return UserError(
        f"{where} is not UTF-8 text{detail}: it was saved in another encoding, such as Latin-1 or Windows-1252, "
        "or it is not a text file (a spreadsheet or an archive named like one).",
        UTF8_REMEDY,
    )


def bad_gzip(path: Path, exc: BaseException) -> UserError:
    return UserError(
        f"{path.name} is not a complete gzip file ({exc or type(exc).__name__}): it was cut short while "
        "uploading, or it is not gzip-compressed although its name ends in .gz.",
        "Compress the file again (gzip keeps the name and adds .gz) and upload it again, or remove the .gz ending "
        "from a file that is not compressed.",
    )


def bad_csv(path: Path, line: int, exc: BaseException, field_limit: int) -> UserError:
    if "field limit" in str(exc):
        return UserError(
            f"{path.name} line {line} has a field longer than {field_limit:,} characters, the most one CSV field "
            "may hold; usually a quote that opens a field is never closed, so the rest of the file became one field.",
            'Close the quote (a quote inside a quoted field is written twice: ""), or split the text: far less '
            "of it can be used (see max_length).",
        )
    return UserError(
        f"{path.name} line {line} cannot be read as CSV ({exc}).",
        "Save it as a UTF-8 CSV file with a header row (or as JSON Lines) and upload it again.",
    )


def disk_full(directory: Path, what: str, exc: BaseException) -> UserError:
    return UserError(
        f"The volume is full: writing {what} to {directory} failed ({type(exc).__name__}: {str(exc)[:200]}).",
        VOLUME_REMEDY,
    )


def is_disk_full(exc: BaseException, directory: Path | None = None) -> bool:
    """Whether `exc` (or an error it arose from) means the disk is full, or `directory`'s volume has no room left."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL_ERRNOS:
            return True
        if any(words in str(seen) for words in DISK_FULL_WORDS):
            return True
        seen = seen.__cause__ or seen.__context__
    if directory is None:
        return False
    try:
        stats = os.statvfs(directory)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < NEARLY_FULL_BYTES


@contextmanager
def writing(what: str, directory: Path) -> Iterator[None]:
    """Turns a write that failed for want of space under `directory` into a UserError; other errors pass through."""
    try:
        yield
    except Exception as exc:
        if is_disk_full(exc, directory):
            raise disk_full(directory, what, exc) from exc
        raise
