"""Sealed originals (issue 14): seal, disclose one face, the audit chain, key shares, service.

Photos are real (faces-dev); the detector is the production one, run once through the
installed `faceblur` command; the service part runs the function against a real local S3.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from conftest import FACES_DEV
from faceblur.cli.authority import PASSPHRASE_ENV
from faceblur.cli.main import main
from faceblur.config import ConfigError, load_settings
from faceblur.media.image import decode
from faceblur.sealing import audit, seal
from faceblur.store.s3 import Store
from stack_fixtures import (
    CuttingProxy,
    scaled_photo,
    start_function,
    start_local_s3,
    webhook_headers,
)

FACEBLUR = Path(sys.executable).parent / "faceblur"
GENESIS = audit.AUDIT_GENESIS


def pixels(path_or_bytes: Path | bytes) -> np.ndarray:
    data = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    return decode(data).pixels


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def log_entries(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(autouse=True)
def operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEBLUR_OPERATOR", "clerk-7")


@pytest.fixture(scope="module")
def photos(dev_annotations) -> list[Path]:
    """Two real photos with two to four clear faces each."""
    chosen = [
        FACES_DEV / entry["image"]
        for entry in dev_annotations
        if 2 <= len(entry["faces"]) <= 4 and min(h for *_, h in entry["faces"]) >= 60
    ]
    assert len(chosen) >= 2
    return chosen[:2]


@pytest.fixture(scope="module")
def sealed(tmp_path_factory, photos) -> dict:
    """Keys, and each photo blurred with --seal-to by the installed command (model once)."""
    root = tmp_path_factory.mktemp("sealed")
    assert main(["keys", "new", str(root / "keys"), "--insecure-no-passphrase"]) == 0
    done = subprocess.run(
        [str(FACEBLUR), "blur", *map(str, photos), "-o", str(root / "out")]
        + ["--seal-to", str(root / "keys" / "authority.pub")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = [root / "out" / photo.name for photo in photos]
    for result in results:
        assert result.is_file() and Path(f"{result}.sealed").is_file()
    return {"root": root, "keys": root / "keys", "results": results, "originals": photos}


@pytest.fixture
def case(sealed, tmp_path: Path) -> dict:
    """A private copy of the first result and its seal, to tamper with freely."""
    result = tmp_path / sealed["results"][0].name
    shutil.copy(sealed["results"][0], result)
    shutil.copy(f"{sealed['results'][0]}.sealed", f"{result}.sealed")
    return {
        "result": result,
        "sealed": Path(f"{result}.sealed"),
        "original": sealed["originals"][0],
        "key": sealed["keys"] / "authority.key",
        "audit_pub": sealed["keys"] / "audit.pub",
        "log": tmp_path / "audit.jsonl",
        "output": tmp_path / "face.png",
    }


def disclose(case: dict, face: int = 0, *extra: str, key: Path | None = None) -> int:
    return main(
        [
            "disclose",
            str(case["result"]),
            "--face",
            str(face),
            "--key",
            str(key or case["key"]),
            "--reason",
            "court order 2026/114",
            "--audit-log",
            str(case["log"]),
            "-o",
            str(case["output"]),
            *extra,
        ]
    )


def regions_of(sealed_path: Path) -> list[tuple[int, int, int, int]]:
    return [face.region for face in seal.read_sealed(sealed_path.read_bytes()).faces]


# ----------------------------------------------------------------------------- round trip


def test_disclosing_one_face_restores_it_and_keeps_every_other_pixel_of_the_result(
    case: dict,
) -> None:
    regions = regions_of(case["sealed"])
    assert len(regions) >= 2, "the photo should have at least two faces found"
    original, result = pixels(case["original"]), pixels(case["result"])

    for face in range(2):
        case["output"] = case["output"].with_name(f"face{face}.png")
        assert disclose(case, face) == 0
        assert case["output"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        restored = pixels(case["output"])
        x, y, w, h = regions[face]
        own = seal.own_pixels(regions, face)
        assert own.mean() > 0.5, "most of the face's region is its own"
        inside = np.zeros(restored.shape[:2], dtype=bool)
        inside[y : y + h, x : x + w] = own
        # The face was hidden in the result, and is back: the original's decoded pixels
        # exactly (they are what was sealed, and PNG is lossless).
        assert np.abs(result[inside].astype(int) - original[inside]).mean() > 10
        assert np.array_equal(restored[inside], original[inside])
        # Everything else, other faces included, exactly as in the result.
        assert np.array_equal(restored[~inside], result[~inside])

    entries = log_entries(case["log"])
    assert [e["outcome"] for e in entries] == ["disclosed", "disclosed"]
    first = entries[0]
    assert first["operator"] == "clerk-7" and first["reason"] == "court order 2026/114"
    assert first["face"] == 0 and first["prev"] == GENESIS
    assert first["result_sha256"] == sha(case["result"])
    assert first["sealed_sha256"] == sha(case["sealed"])
    assert entries[1]["output_sha256"] == sha(case["output"])
    assert entries[1]["prev"] == first["hash"]
    assert main(["audit", "verify", str(case["log"]), "--audit-pub", str(case["audit_pub"])]) == 0
    # The signed head beside the log names both entries.
    head = json.loads(Path(f"{case['log']}.head").read_text())
    assert (head["entries"], head["last_hash"]) == (2, entries[1]["hash"])


def test_the_operator_option_wins_and_one_is_required(
    case: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("FACEBLUR_OPERATOR", "USER", "LOGNAME"):
        monkeypatch.delenv(name, raising=False)
    assert disclose(case) == 1 and not case["output"].exists()
    assert log_entries(case["log"]) == []
    assert disclose(case, 0, "--operator", "judge-2") == 0
    assert log_entries(case["log"])[0]["operator"] == "judge-2"


def test_list_shows_each_face_and_its_region(case: dict, capsys) -> None:
    assert main(["disclose", str(case["result"]), "--list"]) == 0
    shown = capsys.readouterr().out
    for index, region in enumerate(regions_of(case["sealed"])):
        assert f"face {index}: region {list(region)}" in shown
    assert "result matches" in shown


def test_overlapping_regions_never_reveal_the_neighbour() -> None:
    """Face 0's sealed pixels and its disclosure leave face 1's region as in the result."""
    rng = np.random.default_rng(7)
    original = rng.integers(0, 256, (80, 100, 3), dtype=np.uint8)
    regions = [(10, 10, 40, 40), (35, 30, 40, 40)]
    hidden = original.copy()
    for x, y, w, h in regions:
        hidden[y : y + h, x : x + w] = 128
    buffer = io.BytesIO()
    Image.fromarray(hidden).save(buffer, "PNG")
    result = buffer.getvalue()
    key = seal.new_authority_key()
    sealed_file = seal.seal_pixels(original, regions, result, key.public_key())
    restored = pixels(seal.disclose(result, sealed_file, 0, key).png)
    assert np.array_equal(restored[30:70, 35:75], hidden[30:70, 35:75])  # face 1 stays hidden
    assert np.array_equal(restored[10:30, 10:50], original[10:30, 10:50])  # face 0's own part
    # And the sealed plaintext of face 0 holds zeros where face 1 is.
    opened = seal.open_face(seal.read_sealed(sealed_file), 0, key)
    assert not opened[20:, 25:].any()


# ----------------------------------------------------------------------------- refusals


def assert_refused(case: dict, outcome: int) -> None:
    """Exit 1, no output (not even a partial one), and the attempt logged as refused."""
    assert outcome == 1
    assert not case["output"].exists()
    assert not list(case["output"].parent.glob(".*.partial"))
    entries = log_entries(case["log"])
    assert entries and entries[-1]["outcome"] == "refused" and entries[-1]["error"]
    assert entries[-1]["output_sha256"] is None
    assert all(e["outcome"] == "refused" for e in entries)


def test_the_wrong_key_is_refused(case: dict, tmp_path: Path, capsys) -> None:
    assert main(["keys", "new", str(tmp_path / "other"), "--insecure-no-passphrase"]) == 0
    capsys.readouterr()
    assert_refused(case, disclose(case, key=tmp_path / "other" / "authority.key"))
    assert "[wrong_key]" in capsys.readouterr().err
    (refused,) = log_entries(case["log"])
    assert refused["output_sha256"] is None and "WrongKeyError" in refused["error"]


def test_a_passphrase_protects_the_key(
    case: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse\n"))
    keys = tmp_path / "keys"
    assert main(["keys", "new", str(keys), "--passphrase-stdin"]) == 0
    assert b"ENCRYPTED PRIVATE KEY" in (keys / "authority.key").read_bytes()
    assert (keys / "authority.key").stat().st_mode & 0o077 == 0
    public = seal.load_public_key((keys / "authority.pub").read_bytes())
    result = case["result"].read_bytes()
    regions = regions_of(case["sealed"])
    case["sealed"].write_bytes(
        seal.seal_original(case["original"].read_bytes(), result, regions, public)
    )
    assert b"ENCRYPTED PRIVATE KEY" in (keys / "audit.key").read_bytes()
    # Without the passphrase neither key opens: nothing can be signed into the log, so
    # nothing is disclosed and the log is not touched.
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    assert disclose(case, key=keys / "authority.key") == 1 and not case["output"].exists()
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong horse")
    assert disclose(case, key=keys / "authority.key") == 1 and not case["output"].exists()
    assert not case["log"].exists()
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    assert disclose(case, key=keys / "authority.key") == 0


def flip_in_ciphertext(document: dict, face: int, field: str) -> None:
    raw = bytearray(base64.b64decode(document["faces"][face][field]))
    raw[len(raw) // 2] ^= 0x01
    document["faces"][face][field] = base64.b64encode(bytes(raw)).decode()


TAMPERING = {
    "pixels": "TamperedSealError",
    "wrapped key": "TamperedSealError",
    "nonce": "TamperedSealError",
    "another face's pixels": "TamperedSealError",
    "another face's key": "TamperedSealError",
    "region": "TamperedSealError",
    "swap faces": "TamperedSealError",
    "result hash": "ResultMismatchError",
    "raw byte": "",  # wherever it lands: malformed, mismatched or failing authentication
}


@pytest.mark.parametrize("tamper", list(TAMPERING))
def test_a_tampered_sealed_file_is_refused(case: dict, tamper: str) -> None:
    data = case["sealed"].read_bytes()
    document = json.loads(data)
    if tamper == "pixels":
        flip_in_ciphertext(document, 0, "ciphertext")
    elif tamper == "wrapped key":
        flip_in_ciphertext(document, 0, "wrapped_key")
    elif tamper == "nonce":
        flip_in_ciphertext(document, 0, "nonce")
    elif tamper == "another face's pixels":
        flip_in_ciphertext(document, 1, "ciphertext")
    elif tamper == "another face's key":
        flip_in_ciphertext(document, 1, "wrapped_key")
    elif tamper == "region":
        document["faces"][1]["region"][0] += 1  # another face's region: binds face 0 too
    elif tamper == "swap faces":
        faces = document["faces"]
        faces[0], faces[1] = faces[1], faces[0]
        faces[0]["index"], faces[1]["index"] = 0, 1
    elif tamper == "result hash":
        document["result_sha256"] = hashlib.sha256(b"another result").hexdigest()
    if tamper != "raw byte":
        case["sealed"].write_bytes(json.dumps(document).encode())
        assert_refused(case, disclose(case, 0))
        assert TAMPERING[tamper] in log_entries(case["log"])[-1]["error"]
        return
    # One flipped bit at many places (the file's keys are fresh each run): all refused.
    for place in range(1, 40):
        changed = bytearray(data)
        changed[len(changed) * place // 40] ^= 0x04
        case["sealed"].write_bytes(bytes(changed))
        assert_refused(case, disclose(case, 0))


def test_a_tampered_result_is_refused(case: dict) -> None:
    data = bytearray(case["result"].read_bytes())
    data[len(data) // 2] ^= 0x01
    case["result"].write_bytes(bytes(data))
    assert_refused(case, disclose(case, 0))
    assert "ResultMismatchError" in log_entries(case["log"])[0]["error"]


def test_a_sealed_file_beside_another_result_is_refused(sealed: dict, case: dict) -> None:
    other = case["result"].with_name(sealed["results"][1].name)
    shutil.copy(sealed["results"][1], other)
    shutil.copy(case["sealed"], f"{other}.sealed")  # the first photo's seal, moved
    case["result"] = other
    assert_refused(case, disclose(case, 0))
    # Claiming the other result's hash in the moved file does not help: it is bound.
    document = json.loads(case["sealed"].read_bytes())
    document["result_sha256"] = sha(other)
    Path(f"{other}.sealed").write_text(json.dumps(document))
    assert_refused(case, disclose(case, 0))
    assert "TamperedSealError" in log_entries(case["log"])[-1]["error"]


def test_no_such_face_is_refused(case: dict) -> None:
    assert_refused(case, disclose(case, len(regions_of(case["sealed"]))))


def test_nothing_is_disclosed_under_a_broken_log(case: dict) -> None:
    assert disclose(case, 0) == 0
    case["log"].write_text(case["log"].read_text().replace("court order", "curt order"))
    case["output"].unlink()
    before = case["log"].read_text()
    assert disclose(case, 0) == 1 and not case["output"].exists()
    assert case["log"].read_text() == before


# ----------------------------------------------------------------------------- audit chain

AUDIT_KEY = audit.new_audit_key()


def chain(count: int) -> list[str]:
    lines, previous = [], None
    for number in range(count):
        previous = audit.audit_entry(
            previous,
            time=f"2026-11-30T12:0{number}:00+00:00",
            operator="clerk",
            reason=f"case {number}",
            outcome="disclosed",
            result_sha256="a" * 64,
            sealed_sha256="b" * 64,
            face=number,
            output_sha256="c" * 64,
        )
        lines.append(audit.audit_line(previous))
    return lines


def head_of(lines: list[str], key=AUDIT_KEY) -> bytes:
    return audit.signed_head([json.loads(line) for line in lines], key)


def verify(
    tmp_path: Path, lines: list[str], capsys, *extra: str, head: bytes | None = None
) -> tuple[int, str]:
    """`audit verify` on a log of `lines` whose signed head is `head` (none: no head file)."""
    log = tmp_path / "audit.jsonl"
    log.write_text("".join(lines))
    head_file = tmp_path / "audit.jsonl.head"
    head_file.unlink(missing_ok=True)
    if head is not None:
        head_file.write_bytes(head)
    public = tmp_path / "audit.pub"
    public.write_bytes(seal.public_key_pem(AUDIT_KEY))
    code = main(["audit", "verify", str(log), "--audit-pub", str(public), *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_an_intact_chain_verifies(tmp_path: Path, capsys) -> None:
    lines = chain(4)
    code, said = verify(tmp_path, lines, capsys, head=head_of(lines))
    assert code == 0 and "4 entries, chain intact, head signed" in said


def edited(line: str, recompute: bool = False) -> str:
    entry = json.loads(line)
    entry["reason"] = "nothing to see"
    if recompute:
        entry["hash"] = audit._entry_hash(entry)
    return audit.audit_line(entry)


@pytest.mark.parametrize(
    ("change", "broken"),
    [
        (lambda lines: lines[:1] + [edited(lines[1])] + lines[2:], 2),
        (lambda lines: lines[:2] + [edited(lines[2], recompute=True)] + lines[3:], 4),
        (lambda lines: lines[:1] + lines[2:], 2),
        (lambda lines: [lines[0], lines[2], lines[1], lines[3]], 2),
        (lambda lines: lines[:3] + ["not json\n"], 4),
        # The last entry edited and its hash recomputed: the chain holds, the head does not.
        (lambda lines: lines[:3] + [edited(lines[3], recompute=True)], 4),
        # One more entry than the head was signed for: written without the audit key.
        (lambda lines: lines + [chain(5)[4]], 5),
    ],
    ids=[
        "edited",
        "edited, hash recomputed",
        "removed",
        "reordered",
        "garbage",
        "last edited",
        "added past the head",
    ],
)
def test_a_broken_chain_names_its_first_broken_entry(
    tmp_path: Path, capsys, change, broken: int
) -> None:
    lines = chain(4)
    code, said = verify(tmp_path, change(lines), capsys, head=head_of(lines))
    assert code == 1
    assert f"[audit_chain entry={broken}]" in said


@pytest.mark.parametrize("kept", [0, 1, 3])
def test_entries_cut_from_the_end_are_reported_from_the_signed_head(
    tmp_path: Path, capsys, kept: int
) -> None:
    """The issue's attack: whoever can write the log drops its last entries. The chain left
    is valid, but the head signed at the last append records more entries."""
    lines = chain(4)
    code, said = verify(tmp_path, lines[:kept], capsys, head=head_of(lines))
    assert code == 1
    assert f"[audit_cut entries={kept} recorded=4]" in said
    assert "cut from the end" in said


def test_a_cut_log_cannot_be_resigned_or_left_without_a_head(tmp_path: Path, capsys) -> None:
    lines = chain(4)
    # A head for the shortened log, signed with any other key: refused.
    forged = head_of(lines[:2], key=audit.new_audit_key())
    code, said = verify(tmp_path, lines[:2], capsys, head=forged)
    assert code == 1 and "[audit_head]" in said and "not signed by this audit key" in said
    # The head's count edited by hand: its signature no longer holds.
    document = json.loads(head_of(lines))
    document["entries"] = 2
    code, said = verify(tmp_path, lines[:2], capsys, head=json.dumps(document).encode())
    assert code == 1 and "[audit_head]" in said
    # The head removed: a log with entries and no head is refused.
    code, said = verify(tmp_path, lines[:2], capsys)
    assert code == 1 and "no signed head" in said
    # A whole chain written afresh, with a head signed by another key: refused.
    code, said = verify(tmp_path, chain(2), capsys, head=head_of(chain(2), audit.new_audit_key()))
    assert code == 1 and "[audit_head]" in said


def test_the_recorded_last_hash_still_checks_a_log_kept_elsewhere(tmp_path: Path, capsys) -> None:
    lines = chain(3)
    last = json.loads(lines[-1])["hash"]
    assert verify(tmp_path, lines, capsys, "--last-hash", last, head=head_of(lines))[0] == 0
    other = json.loads(lines[-2])["hash"]
    assert verify(tmp_path, lines, capsys, "--last-hash", other, head=head_of(lines))[0] == 1


def test_disclosing_under_a_cut_log_is_refused(case: dict) -> None:
    for face in (0, 1):
        case["output"] = case["output"].with_name(f"face{face}.png")
        assert disclose(case, face) == 0
    lines = case["log"].read_text().splitlines(keepends=True)
    case["log"].write_text(lines[0])
    case["output"] = case["output"].with_name("again.png")
    assert disclose(case, 0) == 1 and not case["output"].exists()
    assert case["log"].read_text() == lines[0]


def test_an_audit_log_in_a_bucket_keeps_one_object_per_entry(
    case: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    s3 = start_local_s3(tmp_path / "s3")
    try:
        for name, value in s3.env.items():
            monkeypatch.setenv(name, value)
        store = s3.store()
        store.client.make_bucket(bucket_name="audit")
        where = "s3://audit/camera-3/"
        verify_bucket = ["audit", "verify", where, "--audit-pub", str(case["audit_pub"])]
        case["log"] = where
        for face in (0, 1):
            case["output"] = tmp_path / f"face{face}.png"
            assert disclose(case, face) == 0
        case["output"] = tmp_path / "face9.png"
        assert disclose(case, 9) == 1  # no such face: refused, and on the record
        keys = store.keys("audit")
        assert keys[-1] == "camera-3/head.json"
        entries = [json.loads(store.read("audit", key)) for key in keys[:-1]]
        assert [e["outcome"] for e in entries] == ["disclosed", "disclosed", "refused"]
        assert keys[:-1] == [f"camera-3/{e['seq']:010d}-{e['hash']}.json" for e in entries]
        assert main(verify_bucket) == 0
        capsys.readouterr()
        # The last entry deleted: a valid shorter chain, caught by the signed head.
        last = store.read("audit", keys[2])
        store.remove("audit", keys[2])
        assert main(verify_bucket) == 1
        assert "[audit_cut entries=2 recorded=3]" in capsys.readouterr().err
        store.put("audit", keys[2], last, "application/json")
        assert main(verify_bucket) == 0
        capsys.readouterr()
        store.remove("audit", keys[1])
        assert main(verify_bucket) == 1
        assert "[audit_chain entry=2]" in capsys.readouterr().err
        # Nothing more is disclosed under the broken log.
        case["output"] = tmp_path / "again.png"
        assert disclose(case, 0) == 1 and not case["output"].exists()
        assert len(store.keys("audit")) == 3
    finally:
        s3.stop()


# ----------------------------------------------------------------------------- key shares


def test_any_two_of_three_shares_rebuild_the_key(tmp_path: Path, case: dict) -> None:
    keys = tmp_path / "keys"
    shutil.copytree(case["key"].parent, keys)
    assert main(["keys", "split", "--k", "2", "--n", "3", str(keys)]) == 0
    shares = sorted(keys.glob("authority.share-*-of-3.json"))
    assert len(shares) == 3
    # The whole key is gone once the shares are written: only k of them rebuild it.
    assert not (keys / "authority.key").exists()
    assert (keys / "authority.pub").exists()
    for number, pair in enumerate(combinations(shares, 2)):
        rebuilt = tmp_path / f"rebuilt-{number}.key"
        assert main(["keys", "join", *map(str, pair), "-o", str(rebuilt)]) == 0
        assert rebuilt.read_bytes() == case["key"].read_bytes()
    # The rebuilt key opens the faces.
    rebuilt = tmp_path / "rebuilt-0.key"
    assert disclose(case, 0, "--audit-key", str(keys / "audit.key"), key=rebuilt) == 0


def test_one_share_or_an_altered_share_rebuilds_nothing(tmp_path: Path, case: dict) -> None:
    keys = tmp_path / "keys"
    shutil.copytree(case["key"].parent, keys)
    assert main(["keys", "split", "--k", "2", "--n", "3", str(keys)]) == 0
    first, second, _ = sorted(keys.glob("authority.share-*-of-3.json"))
    out = tmp_path / "rebuilt.key"
    assert main(["keys", "join", str(first), "-o", str(out)]) == 1 and not out.exists()
    document = json.loads(second.read_text())
    share = bytearray(base64.b64decode(document["share"]))
    share[0] ^= 0x80
    document["share"] = base64.b64encode(bytes(share)).decode()
    second.write_text(json.dumps(document))
    assert main(["keys", "join", str(first), str(second), "-o", str(out)]) == 1
    assert not out.exists()


def test_split_keeps_the_whole_key_only_when_told(tmp_path: Path, case: dict, capsys) -> None:
    keys = tmp_path / "keys"
    shutil.copytree(case["key"].parent, keys)
    assert main(["keys", "split", "--k", "2", "--n", "2", "--keep", str(keys)]) == 0
    assert (keys / "authority.key").read_bytes() == case["key"].read_bytes()
    assert "kept (--keep)" in capsys.readouterr().out
    # Splitting again would overwrite shares: refused, and the key stays.
    assert main(["keys", "split", "--k", "2", "--n", "2", str(keys)]) == 1
    assert (keys / "authority.key").exists()


def test_new_keys_need_a_passphrase_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: no prompt
    assert main(["keys", "new", str(tmp_path / "refused")]) == 1
    assert "--insecure-no-passphrase" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()

    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    assert main(["keys", "new", str(tmp_path / "both"), "--insecure-no-passphrase"]) == 1
    assert main(["keys", "new", str(tmp_path / "protected")]) == 0
    for name in ("authority.key", "audit.key"):
        pem = (tmp_path / "protected" / name).read_bytes()
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")  # PKCS#8, encrypted
        assert (tmp_path / "protected" / name).stat().st_mode & 0o077 == 0
    with pytest.raises(seal.WrongKeyError):
        seal.load_private_key((tmp_path / "protected" / "authority.key").read_bytes(), b"wrong")
    seal.load_private_key((tmp_path / "protected" / "authority.key").read_bytes(), b"correct horse")
    audit.load_audit_private_key(
        (tmp_path / "protected" / "audit.key").read_bytes(), b"correct horse"
    )

    monkeypatch.delenv(PASSPHRASE_ENV)
    assert main(["keys", "new", str(tmp_path / "clear"), "--insecure-no-passphrase"]) == 0
    assert (
        (tmp_path / "clear" / "authority.key")
        .read_bytes()
        .startswith(b"-----BEGIN PRIVATE KEY-----")
    )
    assert "NOT passphrase-protected" in capsys.readouterr().out


def test_an_older_key_folder_gets_an_audit_key_of_its_own(tmp_path: Path, case: dict) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(case["key"], keys / "authority.key")
    before = (keys / "authority.key").read_bytes()
    assert main(["keys", "new", str(keys), "--audit-only", "--insecure-no-passphrase"]) == 0
    assert (keys / "audit.key").exists() and (keys / "audit.pub").exists()
    assert (keys / "authority.key").read_bytes() == before
    assert disclose(case, 0, key=keys / "authority.key") == 0


# ----------------------------------------------------------------------------- configuration


def test_the_service_accepts_only_a_public_sealing_key(tmp_path: Path) -> None:
    key = seal.new_authority_key()
    public = seal.public_key_pem(key).decode()
    settings = load_settings({"FACEBLUR_SEAL_PUBLIC_KEY": public}, secrets_dir=tmp_path)
    assert settings.seal_public_key == public
    (tmp_path / "authority.pub").write_text(public)
    from_file = {"FACEBLUR_SEAL_PUBLIC_KEY_FILE": str(tmp_path / "authority.pub")}
    assert load_settings(from_file, secrets_dir=tmp_path).seal_public_key == public.strip()
    assert load_settings({}, secrets_dir=tmp_path).seal_public_key is None
    (tmp_path / "faceblur-seal-public-key").write_text("off\n")
    assert load_settings(from_file, secrets_dir=tmp_path).seal_public_key is None
    for wrong in (seal.private_key_pem(key).decode(), "value-of-a-typo"):
        (tmp_path / "faceblur-seal-public-key").write_text(wrong)
        with pytest.raises(ConfigError, match="faceblur-seal-public-key"):
            load_settings({}, secrets_dir=tmp_path)


# ----------------------------------------------------------------------------- the service


def test_a_stored_sealed_pair_is_never_mixed_with_a_new_result(
    tmp_path: Path, dev_annotations: list[dict]
) -> None:
    """The same photo again (a retry) keeps the stored result and its seal, whole: a new
    seal beside the old result could open nothing. Here the line to S3 is cut at the first
    write, so the second request succeeds only if it writes nothing."""
    entry = next(e for e in dev_annotations if 2 <= len(e["faces"]) <= 4)
    original, boxes = scaled_photo(entry)
    key = seal.new_authority_key()
    s3 = start_local_s3(tmp_path / "s3")
    proxy = CuttingProxy(s3.server.port)
    try:
        store = Store(dataclasses.replace(s3.settings, s3_endpoint=proxy.endpoint))
        stored = []
        for grey in (0, 255):  # two results of one photo, as fresh noise would give
            hidden = pixels(original).copy()
            for x, y, w, h in boxes:
                hidden[y : y + h, x : x + w] = grey
            buffer = io.BytesIO()
            Image.fromarray(hidden).save(buffer, "PNG")
            result = buffer.getvalue()
            sealed_file = seal.seal_original(original, result, boxes, key.public_key())
            stored.append(
                store.put_pair(original, "image/png", result, "image/png", {}, sealed=sealed_file)
            )
            proxy.cut_on(b"PUT /")
        proxy.restore()
        assert stored[0] == stored[1]
        assert s3.snapshot()["originals"] == [stored[0].original_key]
        kept = store.read("results", stored[0].result_key)
        kept_seal = store.read("originals", stored[0].original_key)
        assert pixels(kept)[boxes[0][1], boxes[0][0]].tolist() == [0, 0, 0]
        assert seal.disclose(kept, kept_seal, 0, key).index == 0
    finally:
        proxy.close()
        s3.stop()


@pytest.fixture(scope="module")
def sealing_function(tmp_path_factory):
    """The function with a sealing key, against its own local S3 (no private key given)."""
    root = tmp_path_factory.mktemp("sealing-service")
    assert main(["keys", "new", str(root / "keys"), "--insecure-no-passphrase"]) == 0
    # The function is given a copy of the public key alone, in a folder of its own.
    (root / "function").mkdir()
    shutil.copy(root / "keys" / "authority.pub", root / "function" / "authority.pub")
    s3 = start_local_s3(root / "s3")
    env = {"FACEBLUR_SEAL_PUBLIC_KEY_FILE": str(root / "function" / "authority.pub")}
    try:
        function = start_function(s3, root / "runner.log", env)
    except BaseException:
        s3.stop()
        raise
    try:
        yield {"s3": s3, "url": f"{function.url}/function/faceblur", "keys": root / "keys"}
    finally:
        function.stop()
        s3.stop()


def test_with_sealing_on_no_bucket_holds_an_original_in_the_clear(
    sealing_function: dict, photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, url = sealing_function["s3"], sealing_function["url"]
    info = requests.get(url, timeout=30).json()
    public = (sealing_function["keys"] / "authority.pub").read_bytes()
    assert info["sealing"] == {
        "enabled": True,
        "authority": seal.fingerprint(seal.load_public_key(public)),
    }
    posted, dropped = photos[0].read_bytes(), photos[1].read_bytes()
    answer = requests.post(
        url, data=posted, headers={"Content-Type": "image/jpeg"}, timeout=300
    ).json()
    sealed_key = answer["result_key"] + ".sealed"
    assert answer["stored"] and answer["original_key"] == sealed_key
    store = s3.store()
    store.put(s3.settings.bucket_inbox, "camera-3/frame.jpg", dropped, "image/jpeg")
    event = {
        "Records": [
            {
                "eventName": "s3:ObjectCreated:Put",
                "s3": {"bucket": {"name": "inbox"}, "object": {"key": "camera-3%2Fframe.jpg"}},
            }
        ]
    }
    delivered = requests.post(url, json=event, headers=webhook_headers(), timeout=300)
    processed = delivered.json()["processed"]
    assert len(processed) == 1

    listing = s3.snapshot()
    print("buckets after sealing:", json.dumps(listing, indent=1))
    assert listing["inbox"] == []
    assert len(listing["results"]) == 2
    assert sorted(listing["originals"]) == sorted(f"{key}.sealed" for key in listing["results"])
    originals = [pixels(posted), pixels(dropped)]
    for bucket, keys in listing.items():
        for key in keys:
            data = store.read(bucket, key)
            assert data not in (posted, dropped), f"{bucket}/{key} is an original"
            if bucket == s3.settings.bucket_originals:
                document = json.loads(data)
                assert document["format"] == "faceblur-sealed"
                continue
            shown = pixels(data)
            original = originals[0] if key.startswith(answer["id"]) else originals[1]
            for face in seal.read_sealed(store.read("originals", f"{key}.sealed")).faces:
                x, y, w, h = face.region
                assert (
                    np.abs(
                        shown[y : y + h, x : x + w].astype(int) - original[y : y + h, x : x + w]
                    ).mean()
                    > 10
                ), f"{bucket}/{key} shows face {face.index}"

    # Disclosure where the key is, reading both objects by bucket and key.
    monkeypatch.setenv("FACEBLUR_OPERATOR", "clerk-9")
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    output = tmp_path / "disclosed.png"
    code = main(
        [
            "disclose",
            f"s3://results/{answer['result_key']}",
            "--face",
            "0",
            "--key",
            str(sealing_function["keys"] / "authority.key"),
            "--reason",
            "subject access request",
            "--audit-log",
            str(tmp_path / "audit.jsonl"),
            "-o",
            str(output),
        ]
    )
    assert code == 0
    regions = [face.region for face in seal.read_sealed(store.read("originals", sealed_key)).faces]
    x, y, w, h = regions[0]
    own = seal.own_pixels(regions, 0)
    restored = pixels(output)[y : y + h, x : x + w]
    assert np.array_equal(restored[own], originals[0][y : y + h, x : x + w][own])
