"""`faceblur`: anonymise or detect faces in photos from the command line.

The commands `blur`, `detect` and `tracks` and the dispatch to them; what they take is in
`faceblur.cli.arguments`, a video's `blur` in `faceblur.cli.videos`."""

from __future__ import annotations

import argparse
import functools
import glob
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from faceblur.cli import seal as cli_seal
from faceblur.cli.arguments import build_parser
from faceblur.cli.audit_log import show_log
from faceblur.cli.videos import blur_video, review_video, show_video
from faceblur.detection import build_detector
from faceblur.errors import EditsError, FaceblurError, RegionsError, tag
from faceblur.formats import IMAGE_SUFFIXES, SEALED_SUFFIX, VIDEO_SUFFIXES
from faceblur.media.follow import detect_video, tracked_faces_to_json, video_tracks
from faceblur.media.photo import (
    anonymise_image,
    anonymise_whole_image,
    faces_to_json,
    locate_each,
    side_by_side,
)
from faceblur.media.review import thumbnail_png
from faceblur.options import Options, VideoEdits, parse_edits, parse_options


def collect_inputs(patterns: Sequence[str]) -> Iterator[tuple[Path, Path]]:
    """(photo, path relative to the output folder) for each file, folder or glob given."""
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.is_file() and found.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                    yield found, found.relative_to(path)
        elif path.exists() or not glob.has_magic(pattern):
            yield path, Path(path.name)
        else:
            for match in sorted(glob.glob(pattern, recursive=True)):
                if Path(match).is_file():
                    yield Path(match), Path(Path(match).name)


def read_regions(path: Path) -> list[object]:
    """The regions in a --regions FILE: a `faceblur detect --json` line, or a plain list."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RegionsError(f"--regions {path}: {_reason(error)}", problem="unreadable") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RegionsError(
            f"--regions {path}: not one JSON document ({error}); give the line "
            "`faceblur detect --json` printed for the photo, or a list of [x, y, w, h]",
            problem="bad_json",
        ) from None
    if isinstance(document, dict):
        faces = document.get("faces")
        if not isinstance(faces, list) or not all(
            isinstance(face, dict) and "region" in face for face in faces
        ):
            raise RegionsError(
                f'--regions {path}: "faces" must be a list of {{"region": ...}}',
                problem="not_a_list",
            )
        return [face["region"] for face in faces]
    if isinstance(document, list):
        return document
    raise RegionsError(f"--regions {path}: expected a JSON object or list", problem="not_a_list")


def read_edits(args: argparse.Namespace) -> VideoEdits | None:
    """The --edits FILE with the --show-track ids added; None when neither was given."""
    edits = VideoEdits()
    if args.edits is not None:
        try:
            text = args.edits.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            why = f"--edits {args.edits}: {_reason(error)}"
            raise EditsError(why, problem="unreadable") from None
        edits = parse_edits(text)
    show = edits.show | frozenset(args.show_track)
    if any(track < 0 for track in show):
        raise EditsError("--show-track takes track ids from 0", problem="bad_show")
    if not show and not edits.hide and args.edits is None:
        return None
    return VideoEdits(show, edits.hide)


def _options(args: argparse.Namespace) -> Options:
    raw = {
        "padding": args.padding,
        "threshold": args.threshold,
        "upright_only": args.upright_only,
    }
    for name in ("method", "shape", "strength", "detect"):
        if hasattr(args, name):
            raw[name] = getattr(args, name)
    if getattr(args, "regions", None) is not None:
        raw["regions"] = read_regions(args.regions)
    return parse_options(raw)


def _no_photos(patterns: Sequence[str]) -> int:
    print(f"faceblur: no photos found in {' '.join(patterns)} [no_input]", file=sys.stderr)
    return 1


def run_blur(args: argparse.Namespace, options: Options) -> int:
    inputs = list(collect_inputs(args.paths))
    if not inputs:
        return _no_photos(args.paths)
    if args.regions is not None and len(inputs) != 1:
        print("faceblur: --regions is for one photo at a time [bad_option]", file=sys.stderr)
        return 2
    try:
        sealer = cli_seal.load_sealer(args.seal_to)
    except FaceblurError as error:
        print(f"faceblur: --seal-to {args.seal_to}: {error} {tag(error)}", file=sys.stderr)
        return 2
    try:
        edits = read_edits(args)
        if edits is not None and not all(_is_video(source) for source, _ in inputs):
            raise EditsError("--show-track and --edits are for videos", problem="not_a_video")
        if edits is not None and len(inputs) != 1:
            raise EditsError("--show-track and --edits are for one video at a time")
        shows = show_log(args) if edits is not None and edits.show else None
    except FaceblurError as error:
        print(f"faceblur: {_said(error)}", file=sys.stderr)
        return 2
    # Videos hidden by --jobs worker processes alone: each worker loads its own models,
    # so none are loaded here (a detector's load is seconds of a core).
    in_workers = (
        args.jobs > 1
        and edits is None
        and sealer is None
        and all(_is_video(source) for source, _ in inputs)
    )
    detector = (
        build_detector() if options.detect and not args.whole_image and not in_workers else None
    )
    started = time.perf_counter()
    done = failed = faces = 0

    def photo(job: tuple[Path, Path, FaceblurError | None]) -> int:
        """One photo read, anonymised (and sealed) and written; its regions hidden."""
        source, target, refused = job
        if refused is not None:
            raise refused
        data = source.read_bytes()
        if args.whole_image:
            result = anonymise_whole_image(data, options, args.max_pixels)
        else:
            # The regions file is in the photo's stored pixels, as `detect` prints.
            result = anonymise_image(data, detector, options, args.max_pixels, True)
        sealed = sealer(data, result) if sealer else None
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(result.data)
        if sealed is not None:
            target.with_name(target.name + SEALED_SUFFIX).write_bytes(sealed)
        return len(result.anonymised)

    def video(job: tuple[Path, Path, FaceblurError | None]) -> int:
        """One video hidden (with its reviewer's edits, or sealed) and written; its
        face-frames hidden."""
        source, target, refused = job
        if refused is not None:
            raise refused
        if args.regions is not None or not options.detect:
            raise FaceblurError(
                "--regions and --no-detect are for photos, not videos", "video_options"
            )
        seal_to = cli_seal.load_public(args.seal_to) if sealer else None
        if edits is None and seal_to is None:
            return blur_video(source, target, detector, options, args)
        if shows is None:
            return review_video(source, target, detector, options, args.crf, edits, seal_to)
        return show_video(source, target, detector, options, args, edits, shows)

    def outcomes(
        jobs: Iterable[tuple[Path, Path, FaceblurError | None]],
    ) -> Iterator[tuple[Path, Callable[[], int]]]:
        """(source, a call giving its count or raising its error) for each job, in order:
        photos in a row side by side (the next one is read and detected while this one
        ends); a video alone, with every core, when its turn comes."""
        for is_video, group in itertools.groupby(jobs, key=lambda job: _is_video(job[0])):
            if is_video:
                for job in group:
                    yield job[0], functools.partial(video, job)
            else:
                for (source, _, _), hidden in side_by_side(group, photo):
                    yield source, hidden.result

    with tqdm(total=len(inputs), unit="photo", disable=len(inputs) < 2, file=sys.stderr) as bar:
        for source, outcome in outcomes(_blur_jobs(inputs, args.outdir)):
            try:
                faces += outcome()
                done += 1
            except (FaceblurError, OSError) as error:
                failed += 1
                tqdm.write(f"faceblur: {source}: {_said(error)} (skipped)", file=sys.stderr)
            bar.update()
    elapsed = time.perf_counter() - started
    print(
        f"{done} photo(s) anonymised into {args.outdir}/, {faces} region(s) hidden, "
        f"{failed} failed, {elapsed:.1f} s",
        file=sys.stderr,
    )
    return 1 if failed else 0


def _blur_jobs(
    inputs: Sequence[tuple[Path, Path]], outdir: Path
) -> Iterator[tuple[Path, Path, FaceblurError | None]]:
    """(source, target, why it is refused or None) for each input, in order: a result may
    neither overwrite its original nor another input's result."""
    written: set[Path] = set()
    for source, relative in inputs:
        target = outdir / relative
        if _is_video(source):
            target = target.with_suffix(".mp4")
        refused = None
        if target.resolve() == source.resolve():
            refused = FaceblurError(
                "the result would overwrite the original; choose another -o", "overwrite_original"
            )
        elif target.resolve() in written:
            refused = FaceblurError(
                f"another photo was already written to {target}", "already_written"
            )
        else:
            written.add(target.resolve())
        yield source, target, refused


def run_detect(args: argparse.Namespace, options: Options) -> int:
    inputs = list(collect_inputs(args.paths))
    if not inputs:
        return _no_photos(args.paths)
    detector = build_detector()
    failed = 0
    sources = [source for source, _ in inputs]
    # Photos in a row run side by side, printed in order; a video runs alone.
    for is_video, group in itertools.groupby(sources, key=_is_video):
        if is_video:
            for source in group:
                failed += _detect_video(source, detector, options, args.json)
            continue
        for source, located in locate_each(group, detector, options, args.max_pixels):
            try:
                found = located.result()
            except (FaceblurError, OSError) as error:
                failed += 1
                print(f"faceblur: {source}: {_said(error)}", file=sys.stderr)
                continue
            width, height = found.size_as_stored
            faces = faces_to_json(found, as_stored=True)
            if args.json:
                record = {"path": str(source), "width": width, "height": height, "faces": faces}
                print(json.dumps(record), flush=True)
            else:
                boxes = " ".join(str(face["box"]) for face in faces)
                print(f"{source}: {len(faces)} face(s) {boxes}".rstrip(), flush=True)
    return 1 if failed else 0


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def run_tracks(args: argparse.Namespace, options: Options) -> int:
    inputs = list(collect_inputs(args.paths))
    if len(inputs) != 1 or not _is_video(inputs[0][0]):
        print("faceblur: tracks takes one video [bad_option]", file=sys.stderr)
        return 2
    source = inputs[0][0]
    try:
        thumbnails = args.thumbnails is not None
        log = video_tracks(source, build_detector(), options, thumbnails=thumbnails)
    except (FaceblurError, OSError) as error:
        print(f"faceblur: {source}: {_said(error)}", file=sys.stderr)
        return 1
    for record in log.records():
        if args.thumbnails is not None and record.thumbnail is not None:
            args.thumbnails.mkdir(parents=True, exist_ok=True)
            path = args.thumbnails / f"track-{record.track}.png"
            path.write_bytes(thumbnail_png(record.thumbnail))
        line = record.to_json()
        if args.json:
            print(json.dumps(line), flush=True)
        else:
            print(
                f"{source} track {line['track']}: frames {line['first']}-{line['last']} "
                f"({line['frames']} hidden)",
                flush=True,
            )
    return 0


def _detect_video(source: Path, detector, options: Options, as_json: bool) -> int:
    """Print one line per frame of a video; 1 when it could not be read, else 0."""
    try:
        for width, height, tracked in detect_video(source, detector, options):
            faces = tracked_faces_to_json(tracked, options, width, height)
            if as_json:
                record = {"path": str(source), "frame": tracked.index, "width": width}
                record.update({"height": height, "faces": faces})
                print(json.dumps(record), flush=True)
            else:
                tracks = " ".join(f"#{face['track']}{face['box']}" for face in faces)
                print(f"{source} frame {tracked.index}: {len(faces)} face(s) {tracks}".rstrip())
    except (FaceblurError, OSError) as error:
        print(f"faceblur: {source}: {_said(error)}", file=sys.stderr)
        return 1
    return 0


def _reason(error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, IsADirectoryError):
        return "is a folder"
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error)


def _said(error: Exception) -> str:
    """The reason, then the code in brackets (`[not_an_image]`, `[unreadable]` for a file)."""
    return f"{_reason(error)} {tag(error) if isinstance(error, FaceblurError) else '[unreadable]'}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in cli_seal.COMMANDS:
        return cli_seal.run(args)
    try:
        options = _options(args)
    except FaceblurError as error:
        parser.error(_said(error))
    if args.max_pixels <= 0:
        parser.error("--max-pixels must be positive")
    if args.command == "blur" and (args.jobs < 1 or not args.segment_seconds > 0):
        parser.error("--jobs and --segment-seconds must be positive")
    if getattr(args, "whole_image", False) and (args.regions is not None or not args.detect):
        parser.error("--whole-image hides the whole photo: it takes no --regions or --no-detect")
    if args.command == "blur":
        return run_blur(args, options)
    if args.command == "tracks":
        return run_tracks(args, options)
    return run_detect(args, options)


if __name__ == "__main__":
    sys.exit(main())
