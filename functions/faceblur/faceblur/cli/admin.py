"""`faceblur-admin`: the operator's command for accounts, on the stack's own database.

    faceblur-admin user add NAME --password-stdin [--admin]
    faceblur-admin user disable NAME
    faceblur-admin key create NAME        (prints the new key alone on stdout)
    faceblur-admin key revoke KEY         (or `-` to read the key from stdin)

The database is `FACEBLUR_DATABASE_URL` (or the secret faceblur-database-url), else
SQLite in .local/: the same one the function and the page use.
"""

from __future__ import annotations

import argparse
import sys

from faceblur.accounts import AccountError, load_account_settings, open_accounts
from faceblur.config import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceblur-admin", description=__doc__.split("\n")[0])
    things = parser.add_subparsers(dest="thing", required=True)
    user = things.add_parser("user", help="add or disable a user").add_subparsers(
        dest="action", required=True
    )
    add = user.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin's first line"
    )
    add.add_argument("--admin", action="store_true", help="may see users and disable them")
    user.add_parser("disable", help="stop a user's keys and sign-in").add_argument("name")
    key = things.add_parser("key", help="create or revoke an API key").add_subparsers(
        dest="action", required=True
    )
    create = key.add_parser("create", help="print a new key for NAME")
    create.add_argument("name")
    create.add_argument("--label", default="", help="a note to tell keys apart")
    key.add_parser("revoke", help="revoke KEY ('-': read it from stdin)").add_argument("key")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        accounts = open_accounts(load_account_settings().database_url)
        if args.thing == "user" and args.action == "add":
            # Never on the command line: it would be visible in `ps` and shell history.
            password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
            accounts.add_user(args.name, password, is_admin=args.admin)
            print(f"added user {args.name}", file=sys.stderr)
        elif args.thing == "user":
            accounts.set_disabled(args.name)
            print(f"disabled user {args.name}", file=sys.stderr)
        elif args.action == "create":
            print(accounts.create_key(args.name, args.label))
        else:
            key = sys.stdin.readline().strip() if args.key == "-" else args.key
            if not accounts.revoke_key(key):
                raise AccountError("No such key, or it is already revoked.", "no_key")
            print("revoked", file=sys.stderr)
    except (AccountError, ConfigError) as error:
        print(f"faceblur-admin: {error} [{error.code}]", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
