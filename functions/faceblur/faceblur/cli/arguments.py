"""`faceblur`'s arguments: the parser of `blur`, `detect` and `tracks` (photos and videos),
with the sealing commands of `faceblur.cli.seal` added to it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from faceblur.cli import seal as cli_seal
from faceblur.config import ENV_VARS
from faceblur.media.image import DEFAULT_MAX_PIXELS
from faceblur.media.x264 import DEFAULT_CRF, MAX_CRF
from faceblur.options import METHOD_INFO, METHOD_NAMES, SHAPES, STRENGTHS, Options

DESCRIPTION = """\
Find every face in photos and make it unrecognisable.

  faceblur blur photo.jpg                 writes anonymised/photo.jpg
  faceblur blur holiday/ -o safe/         every photo in the folder, sub-folders too
  faceblur blur '*.png' --method solid    quoted globs work as well
  faceblur detect photo.jpg --json        one JSON line per photo with the faces found
  faceblur blur clip.mov -o safe/         videos too: writes safe/clip.mp4 (H.264, audio kept)
  faceblur blur clip.mp4 --jobs 4         a video's segments in 4 processes, same result
  faceblur detect clip.mp4 --json         one JSON line per frame, each face with a track id
  faceblur tracks clip.mp4 --json         one JSON line per track (id, frames, regions)
  faceblur blur clip.mp4 --show-track 3 --reason "subject access" --audit-log audit.log
                                          leaves person 3 visible, every other face hidden
  faceblur blur clip.mp4 --edits edits.json   tracks shown and regions hidden over frames
  faceblur detect photo.jpg --json > faces.json   then edit faces.json, and:
  faceblur blur photo.jpg --regions faces.json --no-detect   hides exactly those

The results keep each photo's name and format, with all metadata (GPS, EXIF,
comments) removed. The originals are never changed."""


def _methods_help() -> str:
    lines = [f"  {name}: {METHOD_INFO[name]}".replace("%", "%%") for name in METHOD_NAMES]
    return "how faces are hidden (default: %(default)s):\n" + "\n".join(lines)


def _add_detection_options(parser: argparse.ArgumentParser) -> None:
    defaults = Options()
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="photos, folders (searched recursively) or globs"
    )
    parser.add_argument(
        "--padding",
        default=defaults.padding,
        metavar="FRACTION",
        help="margin added around each face, as a fraction of its size, so hair, ears and chin "
        "are hidden too (default: %(default)s)",
    )
    parser.add_argument(
        "--threshold",
        default=defaults.threshold,
        metavar="SCORE",
        help="detection score from 0 to 1 a face needs; lower finds more faces and more false "
        "ones (default: %(default)s)",
    )
    parser.add_argument(
        "--upright-only",
        action="store_true",
        help="look for upright faces only: faster, for photos known to be the right way up "
        "(by default faces turned a quarter or half round are found too)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help="refuse photos with more pixels than this (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceblur", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    defaults = Options()

    blur = commands.add_parser(
        "blur",
        help="write anonymised copies of photos",
        description="Write an anonymised copy of each photo, same name and format, into OUTDIR.",
        formatter_class=argparse.RawTextHelpFormatter,
    )
    _add_detection_options(blur)
    blur.add_argument(
        "-o",
        "--outdir",
        default="anonymised",
        type=Path,
        help="folder for the results (default: %(default)s)",
    )
    blur.add_argument(
        "--method", choices=METHOD_NAMES, default=defaults.method, help=_methods_help()
    )
    blur.add_argument(
        "--shape",
        choices=SHAPES,
        default=defaults.shape,
        help="region hidden around each face (default: %(default)s)",
    )
    blur.add_argument(
        "--strength",
        choices=STRENGTHS,
        default=defaults.strength,
        help="how strongly the method is applied (default: %(default)s)",
    )
    blur.add_argument(
        "--regions",
        type=Path,
        metavar="FILE",
        help="also hide these regions, exactly as given (no padding), in one photo: the JSON\n"
        "line `faceblur detect --json` prints for it (its faces' 'region'), or a JSON list\n"
        "of [x, y, width, height], in pixels of the photo as stored, like detect's",
    )
    blur.add_argument(
        "--no-detect",
        dest="detect",
        action="store_false",
        help="do not look for faces: hide only the --regions (photos only)",
    )
    blur.add_argument(
        "--crf",
        type=int,
        default=DEFAULT_CRF,
        choices=range(MAX_CRF + 1),
        metavar="0-51",
        help="video quality: H.264 constant rate factor, lower is better and larger "
        "(default: %(default)s, visually lossless)",
    )
    blur.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="processes that hide a video's segments at once; the result is the same for\n"
        "any N (default: the number of cores, %(default)s)",
    )
    blur.add_argument(
        "--segment-seconds",
        type=float,
        default=float(ENV_VARS["FACEBLUR_VIDEO_SEGMENT_SECONDS"]),
        metavar="S",
        help="a video is hidden in segments of about S seconds, joined without re-encoding\n"
        "(default: the service's, %(default)g)",
    )
    blur.add_argument(
        "--whole-image",
        action="store_true",
        help="treat each whole photo as one face region, without detection "
        "(for photos that are already a face crop)",
    )
    blur.add_argument(
        "--seal-to",
        type=Path,
        metavar="AUTHORITY.pub",
        help="also write NAME.sealed: each face's original pixels encrypted for this public "
        "key (faceblur keys new), to be restored one at a time by `faceblur disclose`",
    )
    blur.add_argument(
        "--show-track",
        action="append",
        type=int,
        default=[],
        metavar="ID",
        help="videos: leave this track (an id `faceblur tracks` prints) visible; repeatable.\n"
        "Every track shown is logged: give --reason and --audit-log (and --operator)",
    )
    blur.add_argument(
        "--edits",
        type=Path,
        metavar="FILE",
        help='videos: a JSON file {"show": [track ids], "hide": [{"frames": [first, last],\n'
        '"region": [x, y, w, h]}]}; a hide region is where it is in frame `first`, in\n'
        "pixels of the video as stored, and moves with the content until frame `last`",
    )
    cli_seal.add_audit_options(blur)

    detect = commands.add_parser(
        "detect",
        help="list the faces found in photos",
        description="Report the faces found in each photo. Boxes are [x, y, width, height] in "
        "pixels of the photo as stored; 'region' is what `faceblur blur` would hide.",
    )
    _add_detection_options(detect)
    detect.add_argument("--json", action="store_true", help="one JSON object per line, for scripts")

    tracks = commands.add_parser(
        "tracks",
        help="list the tracked faces of a video",
        description="Report every track of a video: one per face followed through the clip, "
        "with the region hidden for it in each frame ([frame, x, y, width, height], pixels of "
        "the video as stored). The ids are the ones `blur --show-track` and --edits take, "
        "the same for the same clip and options.",
    )
    _add_detection_options(tracks)
    tracks.add_argument("--json", action="store_true", help="one JSON object per line, for scripts")
    tracks.add_argument(
        "--thumbnails",
        type=Path,
        metavar="DIR",
        help="write DIR/track-ID.png: each track's largest region, from the input, for the "
        "reviewer's eyes only (it shows the face)",
    )
    cli_seal.add_commands(commands)
    return parser
