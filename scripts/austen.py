#!/usr/bin/env python3
"""Extracts Jane Austen's novels from the R package janeaustenr's lazy-load database into UTF-8 text files.

    austen.py PKG_DIR OUT_DIR

PKG_DIR is the installed R package (holding data/Rdata.rdx and data/Rdata.rdb). Each novel is a character
vector there, one element per line of the book; it is written as OUT_DIR/<name>.txt with the lines joined
by "\\n". Names: the R object names with "prideprejudice" -> "pride_prejudice" etc.

The database: Rdata.rdx is one gzip-compressed R object (a list whose "variables" element maps each object
name to its (offset, length) in Rdata.rdb); each entry of Rdata.rdb is a 4-byte big-endian uncompressed
length, then zlib data. The objects are R's XDR serialization (format 2 or 3).
Only the types that these files use are read.
"""
import gzip
import os
import struct
import sys
import zlib

NILVALUE, SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP = 254, 1, 2, 9, 10, 13, 14, 16, 19
REFSXP = 255

FILE_NAMES = {
    "emma": "emma",
    "prideprejudice": "pride_prejudice",
    "sensesensibility": "sense_sensibility",
    "mansfieldpark": "mansfield_park",
    "northangerabbey": "northanger_abbey",
    "persuasion": "persuasion",
}


def decompress(blob):
    (n,) = struct.unpack(">I", blob[:4])
    # R's type byte after the length: 'Z' zlib, '2' bzip2, 'X' xz; plain zlib has none.
    kind = blob[4:5]
    if kind in (b"2", b"X"):
        raise SystemExit("austen.py: bzip2/xz-compressed R database entries are not handled")
    body = blob[5:] if kind == b"Z" else blob[4:]
    data = zlib.decompress(body)
    if len(data) != n:
        raise SystemExit(f"austen.py: entry decompressed to {len(data)} bytes, expected {n}")
    return data


class Reader:
    def __init__(self, data):
        if data[:2] != b"X\n":
            raise SystemExit("austen.py: not an XDR R serialization")
        self.d, self.p, self.refs = data, 2, []
        version = self.int()
        self.int()  # writer's R version
        self.int()  # minimal R version
        if version == 3:
            n = self.int()  # native encoding name
            self.p += n
        elif version != 2:
            raise SystemExit(f"austen.py: serialization version {version}")

    def int(self):
        (v,) = struct.unpack(">i", self.d[self.p : self.p + 4])
        self.p += 4
        return v

    def item(self):
        flags = self.int()
        t = flags & 0xFF
        has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
        if t == NILVALUE:
            return None
        if t == REFSXP:
            return self.refs[(flags >> 8) - 1]
        if t == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if t == CHARSXP:
            n = self.int()
            if n == -1:
                return None
            s = self.d[self.p : self.p + n]
            self.p += n
            return s.decode("utf-8" if flags & (1 << 15) or not flags & (1 << 14) else "latin-1")
        if t == LISTSXP:
            out = {}
            while t == LISTSXP:
                attr = self.item() if has_attr else None
                tag = self.item() if has_tag else None
                out[tag] = self.item()
                flags = self.int()
                t = flags & 0xFF
                has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
            if t != NILVALUE:
                raise SystemExit(f"austen.py: pairlist ends with type {t}")
            del attr
            return out
        if t in (LGLSXP, INTSXP):
            n = self.int()
            v = list(struct.unpack(f">{n}i", self.d[self.p : self.p + 4 * n]))
            self.p += 4 * n
        elif t == REALSXP:
            n = self.int()
            v = list(struct.unpack(f">{n}d", self.d[self.p : self.p + 8 * n]))
            self.p += 8 * n
        elif t == STRSXP:
            v = [self.item() for _ in range(self.int())]
        elif t == VECSXP:
            v = [self.item() for _ in range(self.int())]
        else:
            raise SystemExit(f"austen.py: R type {t} not handled")
        attrs = self.item() if has_attr else {}
        names = attrs.get("names") if attrs else None
        return dict(zip(names, v)) if names else v


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    pkg, out = sys.argv[1], sys.argv[2]
    index = Reader(gzip.decompress(open(os.path.join(pkg, "data", "Rdata.rdx"), "rb").read())).item()
    rdb = open(os.path.join(pkg, "data", "Rdata.rdb"), "rb").read()
    os.makedirs(out, exist_ok=True)
    for name, (offset, length) in index["variables"].items():
        obj = Reader(decompress(rdb[offset : offset + length])).item()
        if name not in FILE_NAMES or not isinstance(obj, list) or not all(isinstance(s, str) for s in obj):
            continue
        path = os.path.join(out, FILE_NAMES[name] + ".txt")
        with open(path + ".tmp", "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(obj))
        os.replace(path + ".tmp", path)
        print(f"   austen: {path} ({len(obj)} lines)", file=sys.stderr)


if __name__ == "__main__":
    main()
