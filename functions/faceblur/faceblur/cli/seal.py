"""`faceblur keys | disclose | audit`: the authority's side of sealed originals (faceblur.sealing).

These commands run where the private key is, never in the service. Files only here; the
cryptography, the audit chain and the key shares are faceblur.sealing's pure functions.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import getpass
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from faceblur.config import ConfigError, load_settings
from faceblur.errors import FaceblurError, tag
from faceblur.formats import SEALED_SUFFIX
from faceblur.sealing import audit, seal, tracks
from faceblur.sealing.base import (
    SealError,
    fingerprint,
    private_key_pem,
    public_key_pem,
    sha256_hex,
)
from faceblur.sealing.log import BucketAuditLog
from faceblur.sealing.shares import join_shares, split_key
from faceblur.store.keys import sealed_key
from faceblur.store.s3 import Store

KEY_NAME = "authority.key"
PUBLIC_NAME = "authority.pub"
# The audit key signs the audit log's head (faceblur.sealing.audit): the operator's, kept
# beside the authority key; audit.pub is what `faceblur audit verify` checks with.
AUDIT_KEY_NAME = "audit.key"
AUDIT_PUBLIC_NAME = "audit.pub"
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
    parser.add_argument(
        "--audit-key",
        type=Path,
        help=f"the audit key that signs the log's head (default: {AUDIT_KEY_NAME} beside --key)",
    )
    _passphrase_option(parser)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add `keys`, `disclose` and `audit` to faceblur's sub-commands."""
    keys = commands.add_parser("keys", help="authority keys for sealed originals")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    new = actions.add_parser(
        "new",
        help="write DIR/authority.key and DIR/audit.key (private, passphrase-protected) "
        "and DIR/authority.pub, DIR/audit.pub (public)",
        description="A passphrase is required: --passphrase-stdin, $FACEBLUR_KEY_PASSPHRASE, "
        "or typed at the prompt; --insecure-no-passphrase writes the private keys in the clear.",
    )
    new.add_argument("dir", type=Path, metavar="DIR")
    _passphrase_option(new)
    new.add_argument(
        "--insecure-no-passphrase",
        action="store_true",
        help="write the private keys unencrypted (tests, throw-away keys)",
    )
    new.add_argument(
        "--audit-only",
        action="store_true",
        help="write only audit.key and audit.pub (for a key folder made before them)",
    )
    split = actions.add_parser(
        "split",
        help="split DIR/authority.key into n shares, any k of which rebuild it; the whole "
        "key is removed afterwards unless --keep",
    )
    split.add_argument("dir", type=Path, metavar="DIR")
    split.add_argument("--k", type=int, required=True, help="shares needed to rebuild the key")
    split.add_argument("--n", type=int, required=True, help="shares written")
    split.add_argument(
        "--keep", action="store_true", help="keep DIR/authority.key after writing the shares"
    )
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
    add_audit_options(disclose)  # with --passphrase-stdin: it opens both keys
    disclose.add_argument(
        "-o", "--output", type=Path, metavar="FILE.png", help="where to write the disclosure"
    )

    audit = commands.add_parser("audit", help="check the disclosure audit log")
    audit_actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_actions.add_parser(
        "verify",
        help="exit 0 when the chain is intact and matches its signed head, else say what broke",
    )
    verify.add_argument("log", metavar="LOG", help="a file, or s3://BUCKET/PREFIX/")
    verify.add_argument(
        "--audit-pub",
        type=Path,
        required=True,
        metavar="FILE",
        help=f"the audit public key ({AUDIT_PUBLIC_NAME} from faceblur keys new)",
    )
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


def _new_passphrase(args: argparse.Namespace) -> bytes | None:
    """The passphrase new private keys are encrypted with: required unless the caller
    says --insecure-no-passphrase; typed twice at a terminal when not given otherwise."""
    given = _passphrase(args)
    if args.insecure_no_passphrase:
        if given:
            raise CommandError("a passphrase and --insecure-no-passphrase: choose one")
        return None
    if given:
        return given
    if not sys.stdin.isatty():
        raise CommandError(
            "the private keys need a passphrase: --passphrase-stdin, "
            f"${PASSPHRASE_ENV}, or --insecure-no-passphrase to write them in the clear"
        )
    typed = getpass.getpass("Passphrase for the new private keys: ")
    if not typed or typed != getpass.getpass("Again: "):
        raise CommandError("the passphrases are empty or differ; nothing written")
    return typed.encode()


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


def _new_keys(args: argparse.Namespace) -> int:
    keys = {AUDIT_KEY_NAME: audit.new_audit_key()}
    publics = {AUDIT_KEY_NAME: AUDIT_PUBLIC_NAME}
    if not args.audit_only:
        keys = {KEY_NAME: seal.new_authority_key(), **keys}
        publics[KEY_NAME] = PUBLIC_NAME
    for name in [*keys, *publics.values()]:
        if (args.dir / name).exists():
            raise CommandError(f"{args.dir / name} exists already; not overwriting it")
    passphrase = _new_passphrase(args)
    protection = "passphrase-protected" if passphrase else "NOT passphrase-protected"
    for name, key in keys.items():
        _write_new(args.dir / name, private_key_pem(key, passphrase), private=True)
        _write_new(args.dir / publics[name], public_key_pem(key))
        print(f"{args.dir / name}: private key ({protection}); keep it off the service.")
    if KEY_NAME in keys:
        print(
            f"{args.dir / PUBLIC_NAME}: public key to seal with "
            f"(fingerprint {fingerprint(keys[KEY_NAME])})"
        )
    print(
        f"{args.dir / AUDIT_PUBLIC_NAME}: checks the audit log's signed head "
        f"(faceblur audit verify --audit-pub; fingerprint {fingerprint(keys[AUDIT_KEY_NAME])})"
    )
    return 0


def _split_key(args: argparse.Namespace) -> int:
    key_path = args.dir / KEY_NAME
    key_file = _read(key_path)
    shares = split_key(key_file, args.k, args.n)
    # Never remove the only whole copy unless the shares are known to rebuild it.
    if join_shares(shares[: args.k]) != key_file:
        raise CommandError("the shares do not rebuild the key; nothing written")
    paths = [args.dir / f"authority.share-{i}-of-{args.n}.json" for i in range(1, args.n + 1)]
    for path, share in zip(paths, shares, strict=True):
        _write_new(path, share, private=True)
    if args.keep:
        kept = f"{key_path} kept (--keep): delete it once the shares are handed out."
    else:
        # Unlinking cannot scrub the bytes from every disk (journals, SSD remapping, backups):
        # split on an encrypted or temporary volume.
        key_path.unlink()
        kept = f"{key_path} removed: only the shares can rebuild it now."
    print(
        f"{args.n} shares written, any {args.k} rebuild {KEY_NAME} (faceblur keys join):\n"
        + "\n".join(f"  {path}" for path in paths)
        + f"\n{kept} Give one share to each custodian, then delete the shares here."
    )
    return 0


def run_keys(args: argparse.Namespace) -> int:
    if args.keys_command == "new":
        return _new_keys(args)
    if args.keys_command == "split":
        return _split_key(args)
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
    """JSON lines in one file, its signed head in LOG.head; appends hold an exclusive lock."""

    def __init__(self, path: Path, public_key: Ed25519PublicKey) -> None:
        self.path, self.public_key = path, public_key
        self.head_path = path.with_name(f"{path.name}.head")

    def _checked(self, text: str) -> list[dict]:
        entries = audit.verify_chain(text.splitlines())
        head = self.head_path.read_bytes() if self.head_path.exists() else None
        audit.verify_head(entries, head, self.public_key)
        return entries

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return self._checked("")
        return self._checked(_read(self.path).decode("utf-8", "replace"))

    def append(self, make_entry: Callable[[dict | None], dict], key: Ed25519PrivateKey) -> dict:
        """Append `make_entry(last entry)` after checking the whole chain and its head under
        the lock (nothing is appended to a broken or cut log), then sign the new head."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            entries = self._checked(handle.read())
            entry = make_entry(entries[-1] if entries else None)
            handle.write(audit.audit_line(entry))
            handle.flush()
            os.fsync(handle.fileno())
            # The head replaces the old one whole (rename), still under the lock.
            partial = self.head_path.with_name(f".{self.head_path.name}.partial")
            partial.write_bytes(audit.signed_head([*entries, entry], key))
            os.replace(partial, self.head_path)
        return entry


def audit_log(where: str, public_key: Ed25519PublicKey) -> FileAuditLog | BucketAuditLog:
    if where.startswith("s3://"):
        bucket, _, prefix = where.removeprefix("s3://").partition("/")
        if not bucket:
            raise CommandError(f"{where}: expected s3://BUCKET/PREFIX/")
        return BucketAuditLog(_store(), bucket, prefix, public_key)
    return FileAuditLog(Path(where), public_key)


class ShowLog:
    """The audit log a video's shown tracks are written to, checked before the render."""

    def __init__(
        self,
        log: FileAuditLog | BucketAuditLog,
        key: Ed25519PrivateKey,
        operator: str,
        reason: str,
    ) -> None:
        self.log, self.key, self.operator, self.reason = log, key, operator, reason

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
                ),
                self.key,
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
    if args.audit_key is None:
        raise CommandError("showing a track is logged: give --audit-key (it signs the log)")
    log, key = _checked_log(args, _passphrase(args))
    return ShowLog(log, key, _operator(args), args.reason.strip())


def _checked_log(
    args: argparse.Namespace, passphrase: bytes | None
) -> tuple[FileAuditLog | BucketAuditLog, Ed25519PrivateKey]:
    """The audit log and the key that signs its head, the log checked (chain and head):
    nothing is shown or disclosed under a broken or cut log, or without the key that
    would log it."""
    key = audit.load_audit_private_key(
        _read(args.audit_key or args.key.parent / AUDIT_KEY_NAME), passphrase
    )
    log = audit_log(args.audit_log, key.public_key())
    log.entries()
    return log, key


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
    operator, reason = _operator(args), args.reason.strip()
    if not reason:
        raise CommandError("--reason must say why")
    passphrase = _passphrase(args)  # once: both keys are written with the same one
    log, audit_key = _checked_log(args, passphrase)
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
        private_key = seal.load_private_key(_read(args.key), passphrase)
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
    operator, reason = _operator(args), args.reason.strip()
    if not reason:
        raise CommandError("--reason must say why")
    passphrase = _passphrase(args)  # once: both keys are written with the same one
    # Without the audit key nothing can be logged, so nothing is disclosed.
    log, audit_key = _checked_log(args, passphrase)
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
        private_key = seal.load_private_key(_read(args.key), passphrase)
        disclosed.append(seal.disclose(result, sealed_file, args.face, private_key))
        _write_new(partial, disclosed[0].png, private=True)
        return disclosed[0].output_sha256

    entry = _logged_disclosure(args.output, log, audit_key, record, write)
    disclosure = disclosed[0]
    print(
        f"{args.output}: face {disclosure.index} restored (region {list(disclosure.region)}); "
        f"audit entry {entry['seq']} in {args.audit_log}"
    )
    return 0


# -- audit ------------------------------------------------------------------------------------


def run_audit(args: argparse.Namespace) -> int:
    public_key = audit.load_audit_public_key(_read(args.audit_pub))
    log = audit_log(args.log, public_key)
    if isinstance(log, FileAuditLog) and not log.path.is_file():
        raise CommandError(f"{args.log}: no such file")
    entries = log.entries()
    last = entries[-1]["hash"] if entries else audit.AUDIT_GENESIS
    if args.last_hash and last != args.last_hash.strip().lower():
        raise audit.AuditChainError(
            len(entries), "its hash is not the recorded last hash: entries were cut from the end"
        )
    print(
        f"{args.log}: {len(entries)} entries, chain intact, head signed by audit key "
        f"{fingerprint(public_key)[:16]}; last hash {last}"
    )
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
