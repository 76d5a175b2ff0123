"""WebDataset tar shards: one pass over a shard's headers gives each sample's image member (where its
bytes are) and label, so a split can be read by position, shard by shard, without unpacking anything.

The convention is webdataset's: the members of one sample share a key (the member name up to the
first dot of its file name) and differ by extension: `n01440764_10026.jpg` + `n01440764_10026.cls`
(the class index as text). Shards must be uncompressed `.tar` files (a gzip stream has no positions).
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from lfcc_pipeline.core.errors import first_line
from lfcc_pipeline.data.bad_images import header_problem_bytes

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "ppm", "pgm", "tif", "tiff")
LABEL_EXTENSION = "cls"


@dataclass(frozen=True)
class TarMember:
    """An image stored in a tar shard: `size` bytes at `offset` of `shard`."""

    shard: Path
    offset: int
    size: int
    name: str

    def __str__(self) -> str:
        return f"{self.shard}:{self.name}"

    def read(self, handles: dict | None = None) -> bytes:
        """The member's bytes; `handles` (shard -> open file) keeps shards open across reads."""
        if handles is None:
            with open(self.shard, "rb") as f:
                f.seek(self.offset)
                return f.read(self.size)
        f = handles.get(self.shard)
        if f is None:
            for old in list(handles):  # one shard open at a time: reads go shard by shard
                handles.pop(old).close()
            f = handles[self.shard] = open(self.shard, "rb")  # noqa: SIM115 (closed when the next shard opens)
        f.seek(self.offset)
        return f.read(self.size)


@dataclass
class ShardIndex:
    """The samples of one shard in file order (image member, label), the members that are not usable
    samples (name, why), and the shard's stamp for fingerprints (path, size, mtime)."""

    shard: Path
    members: list[TarMember] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)
    stamp: str = ""


def split_key(name: str) -> tuple[str, str]:
    """webdataset's (key, extension) of a member name: `dir/abc.seg.png` -> (`dir/abc`, `seg.png`)."""
    slash = name.rfind("/") + 1
    dot = name.find(".", slash)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :].lower()


def index_shard(shard: Path) -> ShardIndex:
    """Read a shard's tar headers (and each sample's small label member and 12 image bytes)."""
    st = shard.stat()
    out = ShardIndex(shard, stamp=f"{shard}:{st.st_size}:{st.st_mtime_ns}\n")
    images: dict[str, tarfile.TarInfo] = {}
    labels: dict[str, bytes] = {}
    order: list[str] = []
    try:
        with open(shard, "rb") as raw, tarfile.open(fileobj=raw, mode="r:") as tf:
            while (m := tf.next()) is not None:
                if not m.isfile():
                    continue
                key, ext = split_key(m.name)
                if key not in images and key not in labels:
                    order.append(key)
                if ext in IMAGE_EXTENSIONS:
                    images[key] = m
                elif ext == LABEL_EXTENSION:
                    labels[key] = tf.extractfile(m).read(64)
            heads = {}
            for key, m in images.items():
                raw.seek(m.offset_data)
                heads[key] = raw.read(12)
    except (tarfile.TarError, OSError, EOFError) as e:
        out.bad.append((shard, f"not a readable uncompressed tar archive ({type(e).__name__}: {first_line(e)})"))
        return out
    for key in order:
        m = images.get(key)
        where = Path(f"{shard}:{m.name if m is not None else key}")
        if m is None:
            out.bad.append((where, f"sample without an image member (.{', .'.join(IMAGE_EXTENSIONS[:3])}, ...)"))
            continue
        if key not in labels:
            out.bad.append((where, f"sample without a .{LABEL_EXTENSION} label member"))
            continue
        try:
            label = int(labels[key].decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            out.bad.append((where, f"its .{LABEL_EXTENSION} member is not a class index ({labels[key][:20]!r})"))
            continue
        problem = header_problem_bytes(heads[key], m.size)
        if problem is not None:
            out.bad.append((where, problem))
            continue
        out.members.append(TarMember(shard, m.offset_data, m.size, m.name))
        out.labels.append(label)
    return out


def shards_fingerprint(indexes: list[ShardIndex]) -> str:
    return hashlib.sha256("".join(ix.stamp for ix in indexes).encode()).hexdigest()[:16]


def write_shard(path: Path, samples, image_ext: str = "jpg") -> int:
    """Write (key, image bytes, label) samples as one webdataset shard (`key.jpg` + `key.cls`), atomically;
    returns the sample count."""
    import io
    import os

    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tf:
        for key, data, label in samples:
            for ext, payload in ((image_ext, data), (LABEL_EXTENSION, str(int(label)).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime, info.mode = len(payload), 0, 0o644
                tf.addfile(info, io.BytesIO(payload))
            n += 1
    os.replace(tmp, path)
    return n
