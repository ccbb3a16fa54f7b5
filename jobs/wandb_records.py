"""Read W&B's record logs (``run-<id>.wandb``): what an offline run holds, before it is uploaded.

wandb 0.31 reads these logs only in its Go core, so this is a small reader
of their documented layout: LevelDB's log format with W&B's own header. The
file starts with ``:W&B``, the magic number 0xBEE1 (little-endian) and
version 0; then come 32 KiB blocks of chunks ``crc32 (4 bytes) · length (2)
· type (1) · data``, where type 1 is a whole record and types 2, 3 and 4 are
the first, middle and last piece of one, a block's tail too short for a
chunk header is padding, and the checksum is zlib's crc32 of the data
seeded with the crc32 of the type byte. Each record is a protobuf
``wandb_internal_pb2.Record``.

A job killed while W&B wrote leaves a torn or unfinished last chunk;
reading stops there, at the last record W&B had written whole.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK = 32768
CHUNK = struct.Struct("<IHB")  # checksum, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> Iterator[Any]:
    """The records of the log at ``path`` (``wandb_internal_pb2.Record``), oldest first."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if not data.startswith(HEADER):
        raise ValueError(f"{path} is not a W&B record log (it does not start with W&B's header)")
    position, pieces = len(HEADER), b""
    while position + CHUNK.size <= len(data):
        left = BLOCK - position % BLOCK
        if left < CHUNK.size:
            position += left
            continue
        checksum, length, kind = CHUNK.unpack_from(data, position)
        if kind == 0 and length == 0:  # zero padding up to the next block
            position += left
            continue
        piece = data[position + CHUNK.size:position + CHUNK.size + length]
        if len(piece) < length or zlib.crc32(piece, zlib.crc32(bytes([kind]))) != checksum:
            log.info("%s ends with a torn record at byte %d; reading stops there", path, position)
            return
        position += CHUNK.size + length
        pieces = piece if kind in (FULL, FIRST) else pieces + piece
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            yield record


def last_history_step(paths: Iterable[Path]) -> int | None:
    """The largest step of a history row in the logs at ``paths``; None when they hold none."""
    steps = [record.history.step.num for path in paths for record in read_records(path)
             if record.WhichOneof("record_type") == "history"]
    return max(steps, default=None)
