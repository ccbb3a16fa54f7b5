"""Make an x86-64 shared library that needs glibc 2.38 only for C23's strtol & co. load with an older glibc.

glibc 2.38 gave strtol, strtoul, sscanf, ... C23 twins (__isoc23_strtol@GLIBC_2.38) that programs built against
it call instead. Apptainer's offsetpreload.so is preloaded into the host's squashfuse and fuse2fs (glibc 2.36 on
Debian 12), so unlike the apptainer binaries it cannot bring a glibc of its own. This edits such a file in place:

- every undefined symbol __isoc23_NAME@GLIBC_2.38 becomes NAME@GLIBC_2.2.5: its name points past the prefix inside
  the same string table entry, and its version index becomes that of GLIBC_2.2.5;
- the GLIBC_2.38 entry of the version needs, then unused, gets GLIBC_2.2.5's name and hash (a harmless duplicate).

It refuses a file that needs GLIBC_2.38 for anything else. The one difference in behaviour: the classic functions
do not read C23's 0b prefix. Used by scripts/install-apptainer.sh.  Usage: python3 rebind_c23.py FILE...
"""

import struct
import sys
from typing import NamedTuple

PREFIX = "__isoc23_"
SHT_DYNSYM, SHT_VERNEED, SHT_VERSYM = 11, 0x6FFFFFFE, 0x6FFFFFFF
SHDR = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr
SYMBOL = struct.Struct("<IBBHQQ")  # Elf64_Sym: name, info, other, section index, value, size
VERNEED = struct.Struct("<HHIII")  # Elf64_Verneed: version, count, file, aux, next
VERNAUX = struct.Struct("<IHHII")  # Elf64_Vernaux: hash, flags, other (the version index), name, next


class Section(NamedTuple):
    kind: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int


def sections(data: bytearray) -> list[Section]:
    """The section headers, in order."""
    if data[:6] != b"\x7fELF\x02\x01":
        raise SystemExit("not a 64-bit little-endian ELF file")
    table, = struct.unpack_from("<Q", data, 0x28)
    entry_size, count = struct.unpack_from("<HH", data, 0x3A)
    headers = (SHDR.unpack_from(data, table + i * entry_size) for i in range(count))
    return [Section(kind, offset, size, link, info, entsize)
            for _, kind, _, _, offset, size, link, info, _, entsize in headers]


def rebind(path: str) -> None:
    data = bytearray(open(path, "rb").read())
    headers = sections(data)
    dynsym, versym, verneed = (next(h for h in headers if h.kind == kind)
                               for kind in (SHT_DYNSYM, SHT_VERSYM, SHT_VERNEED))
    strings = headers[dynsym.link].offset

    def name(offset: int) -> str:
        start = strings + offset
        return data[start:data.index(b"\0", start)].decode()

    # version index -> (file offset of its Vernaux entry, version name)
    needs: dict[int, tuple[int, str]] = {}
    entry = verneed.offset
    for _ in range(verneed.info):
        _, n_aux, _, aux, following = VERNEED.unpack_from(data, entry)
        at = entry + aux
        for _ in range(n_aux):
            _, _, index, name_offset, next_aux = VERNAUX.unpack_from(data, at)
            needs[index] = (at, name(name_offset))
            at += next_aux
        entry += following
    by_name = {version: index for index, (_, version) in needs.items()}
    if "GLIBC_2.38" not in by_name:
        print(f"{path}: needs no GLIBC_2.38, left as it is")
        return
    new, old = by_name["GLIBC_2.38"], by_name["GLIBC_2.2.5"]

    for i in range(dynsym.size // dynsym.entsize):
        symbol_at, version_at = dynsym.offset + i * dynsym.entsize, versym.offset + 2 * i
        version, = struct.unpack_from("<H", data, version_at)
        if version & 0x7FFF != new:
            continue
        name_offset, _, _, section, _, _ = SYMBOL.unpack_from(data, symbol_at)
        symbol = name(name_offset)
        if not symbol.startswith(PREFIX) or section != 0:
            raise SystemExit(f"{path}: {symbol} needs GLIBC_2.38 and has no older twin; cannot rebind")
        struct.pack_into("<I", data, symbol_at, name_offset + len(PREFIX))
        struct.pack_into("<H", data, version_at, old)
        print(f"{path}: {symbol}@GLIBC_2.38 -> {symbol[len(PREFIX):]}@GLIBC_2.2.5")

    old_hash, _, _, old_name, _ = VERNAUX.unpack_from(data, needs[old][0])
    struct.pack_into("<IH", data, needs[new][0], old_hash, 0)  # hash, flags
    struct.pack_into("<I", data, needs[new][0] + 8, old_name)
    with open(path, "wb") as out:
        out.write(data)


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        rebind(argument)
