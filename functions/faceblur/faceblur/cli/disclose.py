"""`faceblur disclose`: list a sealed result's faces or tracks, or restore one face (PNG) or
one video track (FFV1), each attempt logged before the output gets its name."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from faceblur.cli.audit_log import FileAuditLog, checked_log, operator_name
from faceblur.cli.authority import CommandError, read_bytes, read_passphrase, s3_store, write_new
from faceblur.formats import SEALED_SUFFIX
from faceblur.sealing import audit, seal, tracks
from faceblur.sealing.base import SealError, sha256_hex
from faceblur.sealing.log import BucketAuditLog
from faceblur.store.keys import sealed_key


def _s3_location(text: str) -> tuple[str, str] | None:
    if not text.startswith("s3://"):
        return None
    bucket, _, key = text.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise CommandError(f"{text}: expected s3://BUCKET/KEY")
    return bucket, key


def _result_and_sealed(args: argparse.Namespace) -> tuple[bytes, bytes]:
    """The result's and its sealed file's bytes, from files or from the bucket."""
    location = _s3_location(args.result)
    if location is None:
        sealed = args.sealed or f"{args.result}{SEALED_SUFFIX}"
        return read_bytes(args.result), read_bytes(sealed)
    store = s3_store()
    bucket, key = location
    result = store.read(bucket, key)
    if not args.sealed:
        return result, store.read(store.settings.bucket_originals, sealed_key(key))
    sealed_location = _s3_location(args.sealed)
    sealed = store.read(*sealed_location) if sealed_location else read_bytes(args.sealed)
    return result, sealed


def _list(args: argparse.Namespace) -> int:
    result, sealed_file = _result_and_sealed(args)
    sealed = seal.read_sealed(sealed_file)
    matches = sha256_hex(result) == sealed.result_sha256
    print(
        f"{args.result}: {len(sealed.faces)} sealed face(s), authority {sealed.authority[:16]}, "
        f"result {'matches' if matches else 'DOES NOT MATCH'} the sealed file"
    )
    for face in sealed.faces:
        print(f"  face {face.index}: region {list(face.region)} (x, y, width, height)")
    return 0 if matches else 1


def _video_seal(args: argparse.Namespace) -> Path | None:
    """The sealed file of a video result (a local file), or None for a photo's."""
    if _s3_location(args.result):
        return None
    sealed = Path(args.sealed or f"{args.result}{SEALED_SUFFIX}")
    try:
        with sealed.open("rb") as handle:
            return sealed if tracks.is_sealed_video(handle.readline(4096)) else None
    except OSError as error:
        raise CommandError(f"{sealed}: {error.strerror or error}") from None


def _list_video(args: argparse.Namespace, sealed_path: Path) -> int:
    sealed = tracks.read_sealed_video(sealed_path)
    matches = tracks.file_sha256(Path(args.result)) == sealed.result_sha256
    print(
        f"{args.result}: {len(sealed.tracks)} sealed track(s), authority "
        f"{sealed.header['authority'][:16]}, result "
        f"{'matches' if matches else 'DOES NOT MATCH'} the sealed file"
    )
    frames: dict[int, list[int]] = {}
    for frame, found in sorted(sealed.boxes.items()):
        for track, _ in found:
            frames.setdefault(track, []).append(frame)
    for track in sorted(sealed.tracks):
        seen = frames.get(track, [])
        print(f"  track {track}: frames {seen[0]}-{seen[-1]} ({len(seen)} sealed)")
    return 0 if matches else 1


def _logged_disclosure(
    output: Path,
    log: FileAuditLog | BucketAuditLog,
    audit_key: Ed25519PrivateKey,
    record: dict,
    write: Callable[[Path], str],
) -> dict:
    """Run `write(partial)` (the disclosure, to a temporary name; it returns the output's
    hash) and log it: a refused attempt is on the record too, marked so, with no output
    hash; a disclosure's entry is written before the file gets its name."""
    partial = output.with_name(f".{output.name}.partial")
    try:
        try:
            output_sha256 = write(partial)
        except SealError as error:
            why = f"{type(error).__name__}: {error}"
            log.append(
                lambda last: audit.audit_entry(last, **record, outcome="refused", error=why),
                audit_key,
            )
            raise
        entry = log.append(
            lambda last: audit.audit_entry(
                last, **record, outcome="disclosed", output_sha256=output_sha256
            ),
            audit_key,
        )
        partial.rename(output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return entry


def _disclose_track(args: argparse.Namespace, sealed_path: Path) -> int:
    """`disclose RESULT --track ID`: one person restored across a sealed video, logged."""
    if args.output.suffix.lower() != tracks.DISCLOSURE_SUFFIX:
        raise CommandError("-o must name a .mkv file: a track's disclosure is written lossless")
    operator, reason = operator_name(args), args.reason.strip()
    if not reason:
        raise CommandError("--reason must say why")
    passphrase = read_passphrase(args)  # once: both keys are written with the same one
    log, audit_key = checked_log(args, passphrase)
    result = Path(args.result)
    record = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "operator": operator,
        "reason": reason,
        "result_sha256": tracks.file_sha256(result),
        "sealed_sha256": tracks.file_sha256(sealed_path),
        "face": None,
        "track": args.track,
    }

    def write(partial: Path) -> str:
        private_key = seal.load_private_key(read_bytes(args.key), passphrase)
        return tracks.disclose_track(result, sealed_path, args.track, private_key, partial)

    entry = _logged_disclosure(args.output, log, audit_key, record, write)
    print(
        f"{args.output}: track {args.track} restored; audit entry {entry['seq']} in "
        f"{args.audit_log}"
    )
    return 0


def _require_flags(args: argparse.Namespace, which: str, chosen: int | None) -> None:
    """A disclosure names what it opens (`which`), the key, why, the log and the output."""
    missing = [
        flag
        for flag, value in (
            (which, chosen),
            ("--key", args.key),
            ("--reason", args.reason),
            ("--audit-log", args.audit_log),
            ("-o", args.output),
        )
        if value is None or value == ""
    ]
    if missing:
        raise CommandError(f"disclosing needs {', '.join(missing)} (or --list)")


def run_disclose(args: argparse.Namespace) -> int:
    video = _video_seal(args)
    if args.list:
        return _list_video(args, video) if video is not None else _list(args)
    if video is not None or args.track is not None:
        if video is None:
            raise CommandError("--track is for a sealed video (a local RESULT and its seal)")
        if args.face is not None:
            raise CommandError("a video's people are tracks: give --track, not --face")
        _require_flags(args, "--track", args.track)
        if args.output.exists():
            raise CommandError(f"{args.output} exists already; not overwriting it")
        return _disclose_track(args, video)
    _require_flags(args, "--face", args.face)
    if args.output.suffix.lower() != ".png":
        raise CommandError("-o must name a .png file: disclosures are written lossless")
    if args.output.exists():
        raise CommandError(f"{args.output} exists already; not overwriting it")
    operator, reason = operator_name(args), args.reason.strip()
    if not reason:
        raise CommandError("--reason must say why")
    passphrase = read_passphrase(args)  # once: both keys are written with the same one
    # Without the audit key nothing can be logged, so nothing is disclosed.
    log, audit_key = checked_log(args, passphrase)
    result, sealed_file = _result_and_sealed(args)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    record = {
        "time": now,
        "operator": operator,
        "reason": reason,
        "result_sha256": sha256_hex(result),
        "sealed_sha256": sha256_hex(sealed_file),
        "face": args.face,
    }
    disclosed: list[seal.Disclosure] = []

    def write(partial: Path) -> str:
        private_key = seal.load_private_key(read_bytes(args.key), passphrase)
        disclosed.append(seal.disclose(result, sealed_file, args.face, private_key))
        write_new(partial, disclosed[0].png, private=True)
        return disclosed[0].output_sha256

    entry = _logged_disclosure(args.output, log, audit_key, record, write)
    disclosure = disclosed[0]
    print(
        f"{args.output}: face {disclosure.index} restored (region {list(disclosure.region)}); "
        f"audit entry {entry['seq']} in {args.audit_log}"
    )
    return 0
