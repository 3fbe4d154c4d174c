"""The keys contract (faceblur.store.keys): one rule for every key, id and name, where the
page and the function used to keep copies that disagreed."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faceblur.errors import BadRequestError
from faceblur.store.keys import (
    JOB_STATES,
    check_job_id,
    content_id,
    download_name,
    image_id_of,
    inbox_key,
    inbox_name,
    is_safe_key,
    job_of_key,
    key_problem,
    new_job_id,
    options_id,
    original_key,
    owner_prefix,
    result_key,
    safe_name,
    sealed_key,
    split_owner,
)
from frontend import gateway

KEY_CHARACTERS = frozenset(string.ascii_letters + string.digits + "._-")


# --- names: one sanitiser --------------------------------------------------------------


def test_inbox_names_are_safe_key_segments() -> None:
    # Was the function's own rule (any script, spaces, brackets); the page's stricter one won.
    assert inbox_name("holiday (1).mp4", "video/mp4") == "holiday_1.mp4"
    assert inbox_name("C:\\Users\\me\\Zoë.mov", "video/quicktime") == "Zoe.mov"
    assert inbox_name("../../etc/passwd", "video/mp4") == "passwd"
    assert inbox_name("..", "video/webm") == "video.webm"
    assert inbox_name(None, "video/x-matroska") == "video.mkv"
    assert inbox_name("a\x00b\nc.mp4", "video/mp4") == "a_b_c.mp4"
    assert len(inbox_name("x" * 500 + ".mp4", "video/mp4")) == 100


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("holiday clip.mp4", "holiday_clip.mp4"),  # the page's rule, kept
        ("../../etc/passwd\\x.MOV", "x.MOV"),
        ("-rf --all.mp4", "rf_--all.mp4"),  # never an option-like start
        (".hidden.mkv", "hidden.mkv"),  # never a hidden file
        ("a....b.mp4", "a.b.mp4"),  # no run of dots
        ("x\u202egpj.exe.mp4", "x_gpj.exe.mp4"),  # no right-to-left override
        ("clip\uff0f..\uff0fx.mp4", "clip_._x.mp4"),  # a fullwidth slash is no separator
        ("семья.mp4", "video.mp4"),  # nothing left but the extension: the fallback
        (".mp4", "mp4"),  # a name that is only a dot and letters is a stem
        ("x" * 200 + ".webm", "x" * 95 + ".webm"),  # too long: the extension stays
    ],
)
def test_inbox_names_keep_ascii_letters_digits_and_dot_dash_underscore(name, expected) -> None:
    assert inbox_name(name, "video/mp4") == expected


@given(st.text(max_size=300), st.sampled_from(["video/mp4", "video/webm", "", "image/png"]))
def test_any_name_gives_an_inbox_key_that_both_doors_accept(name, mime_type) -> None:
    segment = inbox_name(name, mime_type)
    assert segment and set(segment) <= KEY_CHARACTERS and len(segment) <= 100
    assert segment[0] not in "._-" and ".." not in segment
    job = new_job_id()
    for prefix in ("", owner_prefix("0123456789abcdef0123456789abcdef")):
        key = inbox_key(prefix, job, segment)
        # The page presigns it (is_safe_key); the function's bucket event takes it (key_problem).
        assert is_safe_key(key) and key_problem(key) is None
        assert job_of_key(key) == job and split_owner(key)[0] == prefix
        assert key.rsplit("/", 1)[-1] == segment


def test_the_name_a_job_keeps_names_its_download() -> None:
    # The function keeps the inbox key's last segment as the job's name; the page names the
    # download from it, the extension from the result key.
    stored = inbox_name("fête d'été.mov", "video/quicktime")
    assert stored == "fete_d_ete.mov"
    assert download_name(stored, "ab/cd.mp4", fallback="video") == "fete_d_ete-anonymised.mp4"


def test_download_names_keep_every_script_through_the_same_sanitiser() -> None:
    assert safe_name("famille été", any_script=True) == "famille été"
    assert safe_name("famille été") == "famille_ete"
    assert download_name("  ...  ", "a/b.exe") == "photo-anonymised"  # no foreign suffix


# --- keys ----------------------------------------------------------------------------


def test_every_key_the_function_writes_is_one_the_page_accepts() -> None:
    image_id = content_id(b"photo")
    options = options_id({"method": "blur", "padding": 0.2})
    assert options == options_id({"padding": 0.2, "method": "blur"})
    for prefix in ("", owner_prefix("0123456789abcdef0123456789abcdef")):
        result = prefix + result_key(image_id, options, "image/jpeg")
        for key in (result, prefix + original_key(image_id, "video/mp4"), sealed_key(result)):
            assert is_safe_key(key) and key_problem(key) is None
        owner, rest = split_owner(result)
        assert owner == prefix and image_id_of(rest) == image_id


@given(st.text(max_size=200))
def test_a_key_the_page_accepts_passes_the_functions_check_too(key) -> None:
    if is_safe_key(key):
        assert key_problem(key) is None


@pytest.mark.parametrize("key", ["2024 trip/Zoë (1).jpg", "famille été.jpg", "家族/写真.png"])
def test_names_operators_give_pass_the_inbox_check_but_are_no_result_keys(key) -> None:
    assert key_problem(key) is None
    assert not is_safe_key(key)


# --- video jobs --------------------------------------------------------------------------


def test_job_ids_are_checked_with_a_code_free_400() -> None:
    job = new_job_id()
    assert check_job_id(job) == job
    for wrong in ("", "A" * 32, job[:-1], job + "0", "../" + job[3:]):
        with pytest.raises(BadRequestError) as refused:
            check_job_id(wrong)
        assert refused.value.status == 400


def test_the_page_knows_the_job_states_from_the_contract() -> None:
    assert gateway.JOB_STATES is JOB_STATES
    assert set(JOB_STATES) == {"queued", "running", "done", "failed"}
