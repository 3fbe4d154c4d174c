"""`faceblur keys | disclose | audit`: the authority's side of sealed originals (faceblur.sealing).

These commands run where the private key is, never in the service. Files only here; the
cryptography, the audit chain and the key shares are faceblur.sealing's pure functions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faceblur.cli.audit_log import run_audit
from faceblur.cli.authority import (
    AUDIT_KEY_NAME,
    AUDIT_PUBLIC_NAME,
    KEY_NAME,
    OPERATOR_ENVS,
    PASSPHRASE_ENV,
    read_bytes,
)
from faceblur.cli.disclose import run_disclose
from faceblur.cli.keys import run_keys
from faceblur.errors import FaceblurError, tag
from faceblur.sealing import seal

COMMANDS = ("keys", "disclose", "audit")


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
    return seal.load_public_key(read_bytes(public_key_path))


def load_sealer(public_key_path: Path | None):
    """For `faceblur blur --seal-to`: a function (original, result) -> sealed file, or None."""
    if public_key_path is None:
        return None
    public_key = seal.load_public_key(read_bytes(public_key_path))

    def sealer(original: bytes, result) -> bytes:
        return seal.seal_original(original, result.data, result.anonymised, public_key)

    return sealer
