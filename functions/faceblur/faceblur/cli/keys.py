"""`faceblur keys new | split | join`: the authority's and the audit log's keys, and k-of-n
shares of the authority's key."""

from __future__ import annotations

import argparse
import getpass
import sys

from faceblur.cli.authority import (
    AUDIT_KEY_NAME,
    AUDIT_PUBLIC_NAME,
    KEY_NAME,
    PASSPHRASE_ENV,
    PUBLIC_NAME,
    CommandError,
    read_bytes,
    read_passphrase,
    write_new,
)
from faceblur.sealing import audit, seal
from faceblur.sealing.base import fingerprint, private_key_pem, public_key_pem
from faceblur.sealing.shares import join_shares, split_key


def _new_passphrase(args: argparse.Namespace) -> bytes | None:
    """The passphrase new private keys are encrypted with: required unless the caller
    says --insecure-no-passphrase; typed twice at a terminal when not given otherwise."""
    given = read_passphrase(args)
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
        write_new(args.dir / name, private_key_pem(key, passphrase), private=True)
        write_new(args.dir / publics[name], public_key_pem(key))
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
    key_file = read_bytes(key_path)
    shares = split_key(key_file, args.k, args.n)
    # Never remove the only whole copy unless the shares are known to rebuild it.
    if join_shares(shares[: args.k]) != key_file:
        raise CommandError("the shares do not rebuild the key; nothing written")
    paths = [args.dir / f"authority.share-{i}-of-{args.n}.json" for i in range(1, args.n + 1)]
    for path, share in zip(paths, shares, strict=True):
        write_new(path, share, private=True)
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
    key_file = join_shares([read_bytes(path) for path in args.shares])
    write_new(args.output, key_file, private=True)
    print(f"{args.output}: private key rebuilt from {len(args.shares)} share(s)")
    return 0
