"""Download names keep the letters of every script; headers and paths stay safe."""

from __future__ import annotations

import io
from urllib.parse import unquote

import pytest

from faceblur.config import load_settings
from faceblur.store.keys import download_name
from frontend.app import create_app


@pytest.mark.parametrize(
    ("user_name", "expected"),
    [
        ("famille été.jpg", "famille été-anonymised.jpg"),
        ("семья.png", "семья-anonymised.jpg"),
        ("家族写真.jpeg", "家族写真-anonymised.jpg"),
        ("عائلة.jpg", "عائلة-anonymised.jpg"),
        ("परिवार.jpg", "परिवार-anonymised.jpg"),  # combining vowel signs kept
        ("famille e\u0301te\u0301.jpg", "famille été-anonymised.jpg"),  # decomposed -> NFC
        ('a"b;c\r\nd.jpg', "a_b_c_d-anonymised.jpg"),  # header breakers
        ("x\u202egpj.exe.jpg", "x_gpj.exe-anonymised.jpg"),  # no right-to-left override
        ("../../Фото/отпуск.jpg", "отпуск-anonymised.jpg"),
        ("  ...  ", "photo-anonymised.jpg"),
    ],
)
def test_names_keep_their_letters_and_lose_only_what_is_unsafe(user_name, expected):
    assert download_name(user_name, "0123abcd/99ff.jpg") == expected


def test_a_non_latin_name_is_sent_as_rfc_5987_filename_star(tmp_path):
    """The download route's header: an ASCII fallback and the full name as UTF-8."""
    from PIL import Image

    from stack_fixtures import start_local_s3

    s3 = start_local_s3(tmp_path / "s3")
    try:
        data = io.BytesIO()
        Image.new("RGB", (4, 4)).save(data, "JPEG")
        key = "0123abcd/99ff.jpg"
        s3.store().client.put_object(
            bucket_name="results",
            object_name=key,
            data=io.BytesIO(data.getvalue()),
            length=len(data.getvalue()),
        )
        settings = load_settings(
            environ={**s3.env, "FACEBLUR_FRONTEND_SECRET_KEY": "x" * 32}, secrets_dir=tmp_path
        )
        client = create_app({"FACEBLUR_SETTINGS": settings}).test_client()
        response = client.get(f"/results/{key}", query_string={"name": "famille été.jpg"})
    finally:
        s3.stop()
    assert response.status_code == 200
    header = response.headers["Content-Disposition"]
    header.encode("latin-1")  # a header must be sendable as it is
    star = header.split("filename*=UTF-8''", 1)[1].split(";")[0]
    assert unquote(star) == "famille été-anonymised.jpg"
    assert 'filename="famille ete-anonymised.jpg"' in header  # for clients without filename*
