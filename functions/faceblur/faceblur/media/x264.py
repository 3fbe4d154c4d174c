"""x264's settings for every video faceblur writes: the quality scale and the fixed settings
that make the same frames give the same bits in any process (a split job's segments are
joined without re-encoding, `faceblur.media.segments`)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

# x264's constant rate factor: 18 is commonly taken as visually lossless.
DEFAULT_CRF = 18
MAX_CRF = 51
X264_PRESET = "faster"  # most of x264's quality at CRF 18 for a fraction of "medium"'s time


@cache
def x264_options(crf: int) -> dict[str, str]:
    """x264's settings, fixed so that the same frames give the same bits in any process on
    any machine with the same instruction set (docs/tried.md, "Video in segments"):
    one thread, since x264's output depends on its thread count, which it would take
    from the machine's cores (and write into the stream's header, which the join
    checks); a video's parallelism is its segments. And `x264_repeatable`."""
    return {"crf": str(crf), "preset": X264_PRESET, "threads": "1", **x264_repeatable()}


@cache
def x264_repeatable() -> dict[str, str]:
    """x264's SIMD code capped at AVX2: with its AVX-512 code the macroblock tree (mbtree)
    gives other bits from one encode to the next in the same process (reused memory, it
    seems: a clip encoded after TensorFlow has run differs from one encoded before);
    capped, every encode repeats, and an AVX-512 machine runs the code an AVX2 one does
    (the same bits expected; not checked here: one machine). Test clips use it too."""
    return {"x264-params": "asm=avx2"} if _cpu_has("avx2") else {}


def _cpu_has(flag: str) -> bool:
    """Whether Linux says every core has `flag` (False elsewhere: x264 then picks)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    lines = [line for line in text.splitlines() if line.startswith("flags")]
    return bool(lines) and all(flag in line.split(":", 1)[1].split() for line in lines)
