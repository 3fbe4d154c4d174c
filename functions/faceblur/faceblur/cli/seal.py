"""`faceblur keys | disclose | audit`: the authority's side of sealed originals (faceblur.sealing).

These commands run where the private key is, never in the service. Files only here; the
cryptography, the audit chain and the key shares are faceblur.sealing's pure functions.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from faceblur.config import ConfigError, load_settings
from faceblur.errors import FaceblurError, tag
from faceblur.formats import SEALED_SUFFIX
from faceblur.sealing import audit, seal, tracks
from faceblur.sealing.base import SealError, sha256_hex
from faceblur.sealing.log import BucketAuditLog
from faceblur.sealing.shares import join_shares, split_key
from faceblur.store.keys import sealed_key
from faceblur.store.s3 import Store

KEY_NAME = "authority.key"
PUBLIC_NAME = "authority.pub"
PASSPHRASE_ENV = "FACEBLUR_KEY_PASSPHRASE"
OPERATOR_ENVS = ("FACEBLUR_OPERATOR", "USER", "LOGNAME")
COMMANDS = ("keys", "disclose", "audit")


class CommandError(FaceblurError, code="command"):
    """A problem with the command's files or arguments, reported without a traceback."""


# -- parsers ----------------------------------------------------------------------------------


def _passphrase_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passphrase-stdin",
        action="store_true",
        help=f"read the private key's passphrase from the first line of stdin "
        f"(else from ${PASSPHRASE_ENV}, if set)",
    )


def add_audit_options(parser: argparse.ArgumentParser) -> None:
    """--reason, --audit-log and --operator: who opened what and why, on the record."""
    parser.add_argument("--reason", help="why, for the audit log")
    parser.add_argument(
        "--audit-log",
        metavar="LOG",
        help="a file of JSON lines, or s3://BUCKET/PREFIX/ for one object per entry",
    )
    parser.add_argument("--operator", help=f"who does it (default: ${' or $'.join(OPERATOR_ENVS)})")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `keys`, `disclose` and `audit` to faceblur's sub-commands."""
    keys = commands.add_parser("keys", help="authority keys for sealed originals")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    new = actions.add_parser(
        "new", help="write DIR/authority.key (private) and DIR/authority.pub (public)"
    )
    new.add_argument("dir", type=Path, metavar="DIR")
    _passphrase_option(new)
    split = actions.add_parser(
        "split", help="split DIR/authority.key into n shares, any k of which rebuild it"
    )
    split.add_argument("dir", type=Path, metavar="DIR")
    split.add_argument("--k", type=int, required=True, help="shares needed to rebuild the key")
    split.add_argument("--n", type=int, required=True, help="shares written")
    join = actions.add_parser("join", help="rebuild the private key from k shares")
    join.add_argument("shares", nargs="+", type=Path, metavar="SHARE")
    join.add_argument(
        "-o", "--output", type=Path, default=Path(KEY_NAME), help="default: %(default)s"
    )

    disclose = commands.add_parser(
        "disclose",
        help="list the sealed faces of a result, or restore one face or track (logged)",
        description="Restore face N of a sealed result: written as PNG (lossless), every pixel "
        "but face N's exactly as in the result. For a video, --track ID restores that person "
        "in every frame (FFV1 in .mkv, lossless, no audio). RESULT is a file (its seal: "
        "RESULT.sealed) or "
        "s3://BUCKET/KEY (its seal: the originals bucket, KEY.sealed), read with the "
        "FACEBLUR_S3_* settings.",
    )
    disclose.add_argument("result", metavar="RESULT")
    disclose.add_argument("--sealed", metavar="SEALED", help="the sealed file, if not beside it")
    disclose.add_argument("--list", action="store_true", help="list the sealed faces and exit")
    disclose.add_argument("--face", type=int, metavar="N", help="the face to restore")
    disclose.add_argument(
        "--track",
        type=int,
        metavar="ID",
        help="a sealed video's track to restore across the clip (written as FFV1 in .mkv)",
    )
    disclose.add_argument("--key", type=Path, help="the authority's private key (PEM)")
    add_audit_options(disclose)
    disclose.add_argument(
        "-o", "--output", type=Path, metavar="FILE.png", help="where to write the disclosure"
    )
    _passphrase_option(disclose)

    audit = commands.add_parser("audit", help="check the disclosure audit log")
    audit_actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_actions.add_parser(
        "verify", help="exit 0 when the chain is intact, else name the first broken entry"
    )
    verify.add_argument("log", metavar="LOG", help="a file, or s3://BUCKET/PREFIX/")
    verify.add_argument(
        "--last-hash",
        help="the last entry's hash as recorded elsewhere: also catches entries cut from the end",
    )


# -- files ------------------------------------------------------------------------------------


def _write_new(path: Path, data: bytes, private: bool = False) -> None:
    """Write a file that must not exist yet (mode 600 for private material)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        descriptor = os.open(path, flags, 0o600 if private else 0o644)
    except FileExistsError:
        raise CommandError(f"{path} exists already; not overwriting it") from None
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)


def _read(path: Path | str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise CommandError(f"{path}: {error.strerror or error}") from None


def _passphrase(args: argparse.Namespace) -> bytes | None:
    if args.passphrase_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CommandError("--passphrase-stdin: no passphrase on stdin")
        return line.encode()
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


def _s3_location(text: str) -> tuple[str, str] | None:
    if not text.startswith("s3://"):
        return None
    bucket, _, key = text.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise CommandError(f"{text}: expected s3://BUCKET/KEY")
    return bucket, key


def _store():
    """The S3 store from the FACEBLUR_S3_* settings."""
    try:
        return Store(load_settings())
    except ConfigError as error:
        raise CommandError(f"S3 settings: {error}") from None


def _result_and_sealed(args: argparse.Namespace) -> tuple[bytes, bytes]:
    """The result's and its sealed file's bytes, from files or from the bucket."""
    location = _s3_location(args.result)
    if location is None:
        sealed = args.sealed or f"{args.result}{SEALED_SUFFIX}"
        return _read(args.result), _read(sealed)
    store = _store()
    bucket, key = location
    result = store.read(bucket, key)
    if not args.sealed:
        return result, store.read(store.settings.bucket_originals, sealed_key(key))
    sealed_location = _s3_location(args.sealed)
    sealed = store.read(*sealed_location) if sealed_location else _read(args.sealed)
    return result, sealed


# -- keys -------------------------------------------------------------------------------------


def run_keys(args: argparse.Namespace) -> int:
    if args.keys_command == "new":
        passphrase = _passphrase(args)
        key = seal.new_authority_key()
        for name in (KEY_NAME, PUBLIC_NAME):
            if (args.dir / name).exists():
                raise CommandError(f"{args.dir / name} exists already; not overwriting it")
        _write_new(args.dir / KEY_NAME, seal.private_key_pem(key, passphrase), private=True)
        _write_new(args.dir / PUBLIC_NAME, seal.public_key_pem(key))
        protection = "passphrase-protected" if passphrase else "NOT passphrase-protected"
        print(
            f"{args.dir / KEY_NAME}: private key ({protection}); keep it off the service.\n"
            f"{args.dir / PUBLIC_NAME}: public key to seal with "
            f"(fingerprint {seal.fingerprint(key)})"
        )
        return 0
    if args.keys_command == "split":
        shares = split_key(_read(args.dir / KEY_NAME), args.k, args.n)
        paths = [args.dir / f"authority.share-{i}-of-{args.n}.json" for i in range(1, args.n + 1)]
        for path, share in zip(paths, shares, strict=True):
            _write_new(path, share, private=True)
        print(
            f"{args.n} shares written, any {args.k} rebuild {KEY_NAME} (faceblur keys join):\n"
            + "\n".join(f"  {path}" for path in paths)
            + f"\nGive one to each custodian, then delete {args.dir / KEY_NAME} "
            "and the shares here."
        )
        return 0
    key_file = join_shares([_read(path) for path in args.shares])
    _write_new(args.output, key_file, private=True)
    print(f"{args.output}: private key rebuilt from {len(args.shares)} share(s)")
    return 0


# -- disclose ---------------------------------------------------------------------------------


def _operator(args: argparse.Namespace) -> str:
    name = args.operator or next((os.environ[v] for v in OPERATOR_ENVS if os.environ.get(v)), "")
    if not name.strip():
        raise CommandError("who is disclosing? give --operator NAME (or set FACEBLUR_OPERATOR)")
    return name.strip()


class FileAuditLog:
    """JSON lines in one file; appends hold an exclusive lock."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        return audit.verify_chain(_read(self.path).decode("utf-8", "replace").splitlines())

    def append(self, make_entry: Callable[[dict | None], dict]) -> dict:
        """Append `make_entry(last entry)` after checking the whole chain under the lock:
        nothing is appended to a broken log."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            entries = audit.verify_chain(handle.read().splitlines())
            entry = make_entry(entries[-1] if entries else None)
            handle.write(audit.audit_line(entry))
            handle.flush()
            os.fsync(handle.fileno())
        return entry


def audit_log(where: str) -> FileAuditLog | BucketAuditLog:
    if where.startswith("s3://"):
        bucket, _, prefix = where.removeprefix("s3://").partition("/")
        if not bucket:
            raise CommandError(f"{where}: expected s3://BUCKET/PREFIX/")
        return BucketAuditLog(_store(), bucket, prefix)
    return FileAuditLog(Path(where))


class ShowLog:
    """The audit log a video's shown tracks are written to, checked before the render."""

    def __init__(self, log: FileAuditLog | BucketAuditLog, operator: str, reason: str) -> None:
        self.log, self.operator, self.reason = log, operator, reason

    def record(self, source: Path, rendered: Path, tracks: list[int]) -> list[dict]:
        """One entry per track left visible in `rendered`, made from `source`: the
        source's hash as `result_sha256` (what was opened), the render's as output."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        source_hash, output_hash = sha256_hex(_read(source)), sha256_hex(_read(rendered))
        return [
            self.log.append(
                lambda last, track=track: audit.audit_entry(
                    last,
                    time=now,
                    operator=self.operator,
                    reason=self.reason,
                    outcome="shown",
                    result_sha256=source_hash,
                    sealed_sha256=None,
                    face=None,
                    output_sha256=output_hash,
                    track=track,
                )
            )
            for track in tracks
        ]


def show_log(args: argparse.Namespace) -> ShowLog:
    """Showing a track is logged like a disclosure: --reason and --audit-log are required,
    and a broken log refuses it before anything is rendered."""
    missing = [
        flag
        for flag, value in (("--reason", args.reason), ("--audit-log", args.audit_log))
        if not value or not value.strip()
    ]
    if missing:
        raise CommandError(f"showing a track is logged: give {', '.join(missing)}")
    log = audit_log(args.audit_log)
    log.entries()
    return ShowLog(log, _operator(args), args.reason.strip())


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


def _disclose_track(args: argparse.Namespace, sealed_path: Path) -> int:
    """`disclose RESULT --track ID`: one person restored across a sealed video, logged."""
    if args.output.suffix.lower() != tracks.DISCLOSURE_SUFFIX:
        raise CommandError("-o must name a .mkv file: a track's disclosure is written lossless")
    operator, reason = _operator(args), args.reason.strip()
    if not reason:
        raise CommandError("--reason must say why")
    log = audit_log(args.audit_log)
    log.entries()  # refuse early: nothing is disclosed under a broken log
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
    partial = args.output.with_name(f".{args.output.name}.partial")
    try:
        try:
            private_key = seal.load_private_key(_read(args.key), _passphrase(args))
            output_sha256 = tracks.disclose_track(
                result, sealed_path, args.track, private_key, partial
            )
        except SealError as error:
            why = f"{type(error).__name__}: {error}"
            log.append(lambda last: audit.audit_entry(last, **record, outcome="refused", error=why))
            raise
        entry = log.append(
            lambda last: audit.audit_entry(
                last, **record, outcome="disclosed", output_sha256=output_sha256
            )
        )
        partial.rename(args.output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    print(
        f"{args.output}: track {args.track} restored; audit entry {entry['seq']} in "
        f"{args.audit_log}"
    )
    return 0


def run_disclose(args: argparse.Namespace) -> int:
    video = _video_seal(args)
    if args.list:
        return _list_video(args, video) if video is not None else _list(args)
    if video is not None or args.track is not None:
        if video is None:
            raise CommandError("--track is for a sealed video (a local RESULT and its seal)")
        if args.face is not None:
            raise CommandError("a video's people are tracks: give --track, not --face")
        missing = [
            flag
            for flag, value in (
                ("--track", args.track),
                ("--key", args.key),
                ("--reason", args.reason),
                ("--audit-log", args.audit_log),
                ("-o", args.output),
            )
            if value is None or value == ""
        ]
        if missing:
            raise CommandError(f"disclosing needs {', '.join(missing)} (or --list)")
        if args.output.exists():
            raise CommandError(f"{args.output} exists already; not overwriting it")
        return _disclose_track(args, video)
    missing = [
        flag
        for flag, value in (
            ("--face", args.face),
            ("--key", args.key),
            ("--reason", args.reason),
            ("--audit-log", args.audit_log),
            ("-o", args.output),
        )
        if value is None or value == ""
    ]
    if missing:
        raise CommandError(f"disclosing needs {', '.join(missing)} (or --list)")
    if args.output.suffix.lower() != ".png":
        raise CommandError("-o must name a .png file: disclosures are written lossless")
    if args.output.exists():
        raise CommandError(f"{args.output} exists already; not overwriting it")
    operator, reason = _operator(args), args.reason.strip()
    if not reason:
        raise CommandError("--reason must say why")
    log = audit_log(args.audit_log)
    log.entries()  # refuse early: nothing is disclosed under a broken log
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
    try:
        private_key = seal.load_private_key(_read(args.key), _passphrase(args))
        disclosure = seal.disclose(result, sealed_file, args.face, private_key)
    except SealError as error:
        # A refused attempt is on the record too, marked so, with no output hash.
        why = f"{type(error).__name__}: {error}"
        log.append(
            lambda last: audit.audit_entry(last, **record, outcome="refused", error=why),
        )
        raise
    # Output first to a temporary name: the log entry exists before the file does.
    partial = args.output.with_name(f".{args.output.name}.partial")
    try:
        _write_new(partial, disclosure.png, private=True)
        entry = log.append(
            lambda last: audit.audit_entry(
                last, **record, outcome="disclosed", output_sha256=disclosure.output_sha256
            ),
        )
        partial.rename(args.output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    print(
        f"{args.output}: face {disclosure.index} restored (region {list(disclosure.region)}); "
        f"audit entry {entry['seq']} in {args.audit_log}"
    )
    return 0


# -- audit ------------------------------------------------------------------------------------


def run_audit(args: argparse.Namespace) -> int:
    log = audit_log(args.log)
    if isinstance(log, FileAuditLog) and not log.path.is_file():
        raise CommandError(f"{args.log}: no such file")
    entries = log.entries()
    last = entries[-1]["hash"] if entries else audit.AUDIT_GENESIS
    if args.last_hash and last != args.last_hash.strip().lower():
        raise audit.AuditChainError(
            len(entries), "its hash is not the recorded last hash: entries were cut from the end"
        )
    print(f"{args.log}: {len(entries)} entries, chain intact; last hash {last}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run a keys/disclose/audit command; errors are one line on stderr and exit 1."""
    runner = {"keys": run_keys, "disclose": run_disclose, "audit": run_audit}[args.command]
    try:
        return runner(args)
    except FaceblurError as error:
        print(
            f"faceblur {args.command}: {type(error).__name__}: {error} {tag(error)}",
            file=sys.stderr,
        )
        return 1


def load_public(public_key_path: Path):
    """The authority's public key in a file (`faceblur keys new`'s authority.pub)."""
    return seal.load_public_key(_read(public_key_path))


def load_sealer(public_key_path: Path | None):
    """For `faceblur blur --seal-to`: a function (original, result) -> sealed file, or None."""
    if public_key_path is None:
        return None
    public_key = seal.load_public_key(_read(public_key_path))

    def sealer(original: bytes, result) -> bytes:
        return seal.seal_original(original, result.data, result.anonymised, public_key)

    return sealer
