"""The page with accounts on, against the real S3 server and the function with keys on."""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from dataclasses import replace

import pytest
from account_fixtures import AuthStack

from data import composed_entries
from faceblur.accounts import MAX_KEYS_PER_USER, AccountSettings, Backoff
from faceblur.config import ConfigError, load_settings
from frontend.app import create_app
from stack_fixtures import scaled_photo

SECRET = "a-test-secret-key-that-is-long-enough"
PASSWORD = "correct horse battery staple"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def account_settings(auth_stack: AuthStack) -> AccountSettings:
    return AccountSettings(
        enabled=True,
        signup=False,
        rate_per_minute=60,
        database_url=auth_stack.database_url,
        internal_token=auth_stack.internal_token,
    )


@pytest.fixture
def app(s3, auth_stack, account_settings, tmp_path):
    settings = load_settings(
        environ={
            **s3.env,
            "FACEBLUR_GATEWAY_URL": auth_stack.url,
            "FACEBLUR_FRONTEND_SECRET_KEY": SECRET,
        },
        secrets_dir=tmp_path,
    )
    return create_app({"FACEBLUR_SETTINGS": settings, "FACEBLUR_ACCOUNTS": account_settings})


@pytest.fixture
def photo() -> bytes:
    # Any photo of a face: a composed one (tests/data.py), so these run on any clone.
    return scaled_photo(composed_entries(1)[0], 240, "JPEG")[0]


def token_of(client, path: str = "/signin") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, name: str, password: str = PASSWORD):
    return client.post(
        "/signin", data={"csrf_token": token_of(client), "name": name, "password": password}
    )


def person(app, auth_stack: AuthStack, name: str, admin: bool = False):
    """A new user, signed in on a client of their own."""
    name = unique(name)
    auth_stack.accounts.add_user(name, PASSWORD, is_admin=admin)
    client = app.test_client()
    assert sign_in(client, name).status_code == 302
    client.name = name
    return client


def upload(client, photo: bytes) -> dict:
    answer = client.post(
        "/api/anonymise",
        data={
            "csrf_token": token_of(client, "/"),
            "photo": (io.BytesIO(photo), "me.jpg", "image/jpeg"),
        },
        content_type="multipart/form-data",
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def gallery_keys(client) -> list[str]:
    page = client.get("/gallery").get_data(as_text=True)
    return re.findall(r'data-key="([^"]+)"', page)


def test_signed_out_everything_but_sign_in_is_closed(app):
    client = app.test_client()
    for path in ("/", "/gallery", "/account", "/results/abc/def.jpg", "/results.zip?key=a"):
        answer = client.get(path)
        assert answer.status_code == 302 and answer.headers["Location"].endswith("/signin")
    api = client.post("/api/anonymise", data={"csrf_token": token_of(client)})
    assert api.status_code == 401 and "sign in" in api.get_json()["error"]
    assert client.get("/signin").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_two_people_never_see_each_others_results(app, auth_stack, s3, photo):
    ann, bob = person(app, auth_stack, "ann"), person(app, auth_stack, "bob")
    mine = upload(ann, photo)
    theirs = upload(bob, photo)
    ann_prefix = auth_stack.accounts.user(ann.name).prefix
    assert mine["key"].startswith(ann_prefix) and not theirs["key"].startswith(ann_prefix)
    assert gallery_keys(ann) == [mine["key"]]
    assert gallery_keys(bob) == [theirs["key"]]
    # The presigned URLs on each gallery are of that person's results only.
    page = ann.get("/gallery").get_data(as_text=True)
    assert theirs["key"] not in page and mine["key"] in page
    for path in (f"/results/{theirs['key']}", f"/thumbnails/{theirs['key']}"):
        assert ann.get(path).status_code == 404
    assert ann.get(f"/results/{mine['key']}").status_code == 200
    assert ann.get(f"/results.zip?key={theirs['key']}").status_code == 400
    assert ann.get(f"/results.zip?key={mine['key']}&key={theirs['key']}").status_code == 400
    zipped = ann.get(f"/results.zip?key={mine['key']}")
    assert zipped.status_code == 200
    with zipfile.ZipFile(io.BytesIO(zipped.data)) as archive:
        assert len(archive.namelist()) == 1


def test_deleting_my_results_removes_the_objects_and_only_mine(app, auth_stack, s3, photo):
    ann, bob = person(app, auth_stack, "ann"), person(app, auth_stack, "bob")
    upload(ann, photo)
    kept = upload(bob, photo)
    answer = ann.post(
        "/account/results/delete",
        data={"csrf_token": token_of(ann, "/account"), "confirm": "yes"},
    )
    assert answer.status_code == 200 and "Deleted 2 stored files" in answer.get_data(as_text=True)
    snapshot = s3.snapshot()
    ann_prefix = auth_stack.accounts.user(ann.name).prefix
    assert not any(k.startswith(ann_prefix) for k in snapshot["originals"] + snapshot["results"])
    assert snapshot["results"] == [kept["key"]] and len(snapshot["originals"]) == 1
    assert gallery_keys(ann) == []


def test_deleting_my_account_removes_my_objects_keys_and_sign_in(app, auth_stack, s3, photo):
    ann = person(app, auth_stack, "ann")
    upload(ann, photo)
    key = auth_stack.accounts.create_key(ann.name)
    wrong = ann.post(
        "/account/delete", data={"csrf_token": token_of(ann, "/account"), "password": "nope"}
    )
    assert wrong.status_code == 400 and s3.snapshot()["results"]
    gone = ann.post(
        "/account/delete", data={"csrf_token": token_of(ann, "/account"), "password": PASSWORD}
    )
    assert gone.status_code == 200 and "Account deleted" in gone.get_data(as_text=True)
    assert s3.snapshot() == {"inbox": [], "originals": [], "results": []}
    assert auth_stack.accounts.identity_for_key(key) is None
    assert auth_stack.accounts.user(ann.name) is None
    assert sign_in(app.test_client(), ann.name).status_code == 401
    assert ann.get("/gallery").status_code == 302


def test_keys_are_shown_once_and_revoked_on_the_page(app, auth_stack):
    ann = person(app, auth_stack, "ann")
    created = ann.post(
        "/account/keys", data={"csrf_token": token_of(ann, "/account"), "label": "laptop"}
    )
    assert created.status_code == 201
    key = re.search(r'<code id="new-key">([^<]+)</code>', created.get_data(as_text=True)).group(1)
    assert auth_stack.accounts.identity_for_key(key).name == ann.name
    later = ann.get("/account").get_data(as_text=True)
    assert key not in later and "laptop" in later and key[:10] in later
    key_id = re.search(r'data-key-id="(\d+)"', later).group(1)
    # Another person cannot revoke it.
    bob = person(app, auth_stack, "bob")
    bob.post(f"/account/keys/{key_id}/revoke", data={"csrf_token": token_of(bob, "/account")})
    assert auth_stack.accounts.identity_for_key(key) is not None
    ann.post(f"/account/keys/{key_id}/revoke", data={"csrf_token": token_of(ann, "/account")})
    assert auth_stack.accounts.identity_for_key(key) is None
    assert "Revoked" in ann.get("/account").get_data(as_text=True)


def test_an_admin_sees_users_and_usage_and_disables_one(app, auth_stack, s3, photo):
    boss = person(app, auth_stack, "boss", admin=True)
    ann = person(app, auth_stack, "ann")
    upload(ann, photo)
    assert ann.get("/admin").status_code == 403
    page = boss.get("/admin").get_data(as_text=True)
    row = re.search(rf'<tr data-user="{ann.name}">(.*?)</tr>', page, re.S).group(1)
    assert re.search(r'class="usage">1<', row)
    disabled = boss.post(
        f"/admin/users/{ann.name}/disable", data={"csrf_token": token_of(boss, "/admin")}
    )
    assert disabled.status_code == 302
    # Signed out at the next request; cannot sign in again.
    assert ann.get("/gallery").status_code == 302
    assert sign_in(app.test_client(), ann.name).status_code == 401


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def from_address(client, address: str):
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_failed_sign_ins_back_off_and_the_wait_ends(app, auth_stack):
    clock = FakeClock()
    app.extensions["faceblur-accounts"].signin_backoff = Backoff(clock=clock)
    name = unique("target")
    auth_stack.accounts.add_user(name, PASSWORD)
    client = from_address(app.test_client(), "192.0.2.7")
    statuses = [sign_in(client, name, "wrong password!").status_code for _ in range(6)]
    assert statuses == [401] * 6  # five free, the sixth starts the wait
    waits = []
    for _ in range(3):
        limited = sign_in(client, name)  # even the right password waits now
        assert limited.status_code == 429 and "wait" in limited.get_data(as_text=True)
        waits.append(int(limited.headers["Retry-After"]))
        clock.now += waits[-1]
        assert sign_in(client, name, "wrong again!!").status_code == 401
    assert waits == [1, 2, 4]  # doubling, not a lock
    clock.now += 8
    assert sign_in(client, name).status_code == 302


def test_guessing_a_name_does_not_lock_its_owner_out(app, auth_stack):
    """Someone guessing ann's password from elsewhere slows their own guesses and any new
    browser's, not ann's browser that signed in before (it carries a signed device cookie)."""
    app.extensions["faceblur-accounts"].signin_backoff = Backoff(clock=FakeClock())
    name = unique("ann")
    auth_stack.accounts.add_user(name, PASSWORD)
    own = from_address(app.test_client(), "198.51.100.1")
    assert sign_in(own, name).status_code == 302
    own.post("/signout", data={"csrf_token": token_of(own, "/")})
    guesser = from_address(app.test_client(), "203.0.113.9")
    for _ in range(10):
        sign_in(guesser, name, "guess guess guess")
    assert sign_in(guesser, name).status_code == 429
    # Another address, a new browser: the name's own back-off holds it.
    stranger = from_address(app.test_client(), "198.51.100.77")
    assert sign_in(stranger, name).status_code == 429
    # The owner's browser signs in at once.
    assert sign_in(own, name).status_code == 302
    assert own.get("/account").status_code == 200


def test_signing_out_ends_every_copy_of_the_cookie(s3, tmp_path, database_url):
    """The session version lives in the accounts database (PostgreSQL in the cluster): a
    cookie copied before the sign-out no longer opens anything."""
    app = sessions_app(s3, tmp_path, database_url)
    people = app.extensions["faceblur-accounts"].accounts
    name = unique("ann")
    people.add_user(name, PASSWORD)
    ann = app.test_client()
    assert sign_in(ann, name).status_code == 302
    stolen = app.test_client()
    stolen.set_cookie("session", ann.get_cookie("session").value)
    assert stolen.get("/account").status_code == 200
    assert ann.post("/signout", data={"csrf_token": token_of(ann, "/")}).status_code == 302
    assert stolen.get("/account").status_code == 302
    assert stolen.get("/gallery").headers["Location"].endswith("/signin")
    people.engine.dispose()


def sessions_app(s3, tmp_path, database_url: str):
    settings = load_settings(
        environ={**s3.env, "FACEBLUR_FRONTEND_SECRET_KEY": SECRET}, secrets_dir=tmp_path
    )
    accounts = AccountSettings(True, False, 60, database_url, "internal-token")
    return create_app({"FACEBLUR_SETTINGS": settings, "FACEBLUR_ACCOUNTS": accounts})


def test_a_new_password_ends_the_other_sessions_and_keeps_this_one(app, auth_stack):
    ann = person(app, auth_stack, "ann")
    other = app.test_client()
    other.set_cookie("session", ann.get_cookie("session").value)
    assert other.get("/account").status_code == 200
    token = token_of(ann, "/account")
    differ = ann.post(
        "/account/password",
        data={
            "csrf_token": token,
            "password": PASSWORD,
            "new_password": "a new password here",
            "new_password_again": "another one here",
        },
    )
    assert differ.status_code == 400 and other.get("/account").status_code == 200
    changed = ann.post(
        "/account/password",
        data={
            "csrf_token": token,
            "password": PASSWORD,
            "new_password": "a new password here",
            "new_password_again": "a new password here",
        },
    )
    assert changed.status_code == 200 and "Password changed" in changed.get_data(as_text=True)
    assert ann.get("/account").status_code == 200
    assert other.get("/account").status_code == 302
    assert sign_in(app.test_client(), ann.name).status_code == 401
    assert sign_in(app.test_client(), ann.name, "a new password here").status_code == 302


def test_deleting_all_my_results_asks_first(app, auth_stack, s3, photo):
    ann = person(app, auth_stack, "ann")
    made = upload(ann, photo)
    account = ann.get("/account").get_data(as_text=True)
    link = re.search(r'<a class="button danger" id="delete-all" href="([^"]+)"', account).group(1)
    asked = ann.get(link)
    assert asked.status_code == 200 and "cannot be undone" in asked.get_data(as_text=True)
    assert made["key"] in s3.snapshot()["results"]
    # A post without the confirmation (the old one-click form) asks again, deletes nothing.
    token = token_of(ann, "/account")
    again = ann.post("/account/results/delete", data={"csrf_token": token})
    assert again.status_code == 200 and "cannot be undone" in again.get_data(as_text=True)
    assert made["key"] in s3.snapshot()["results"]
    done = ann.post("/account/results/delete", data={"csrf_token": token, "confirm": "yes"})
    assert "Deleted 2 stored files" in done.get_data(as_text=True)
    assert made["key"] not in s3.snapshot()["results"]


def test_a_person_holds_a_bounded_number_of_keys(app, auth_stack):
    ann = person(app, auth_stack, "ann")
    token = token_of(ann, "/account")
    for _ in range(MAX_KEYS_PER_USER):
        assert ann.post("/account/keys", data={"csrf_token": token}).status_code == 201
    refused = ann.post("/account/keys", data={"csrf_token": token})
    assert refused.status_code == 400 and "Revoke one" in refused.get_data(as_text=True)


def test_forms_need_their_csrf_token(app, auth_stack):
    name = unique("ann")
    auth_stack.accounts.add_user(name, PASSWORD)
    client = app.test_client()
    assert client.post("/signin", data={"name": name, "password": PASSWORD}).status_code == 400
    ann = person(app, auth_stack, "ann")
    for path in ("/account/keys", "/account/results/delete", "/account/delete", "/signout"):
        assert ann.post(path, data={"password": PASSWORD}).status_code == 400
    assert auth_stack.accounts.keys(auth_stack.accounts.user(ann.name).user_id) == []


def test_session_cookies_are_httponly_samesite_and_secure_off_loopback(app, auth_stack):
    name = unique("ann")
    auth_stack.accounts.add_user(name, PASSWORD)

    def session_cookie(base_url: str) -> str:
        client = app.test_client()
        page = client.get("/signin", base_url=base_url).get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        answer = client.post(
            "/signin",
            data={"csrf_token": token, "name": name, "password": PASSWORD},
            base_url=base_url,
            # Over HTTPS Flask-WTF also wants a same-origin Referer.
            headers={"Referer": f"{base_url}/signin"},
        )
        assert answer.status_code == 302
        return next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith("session="))

    local = session_cookie("http://127.0.0.1:5000")
    assert "HttpOnly" in local and "SameSite=Lax" in local and "Secure" not in local
    public = session_cookie("https://faceblur.example.org")
    assert "HttpOnly" in public and "SameSite=Lax" in public and "Secure" in public


def test_sign_up_only_when_the_operator_allows_it(s3, auth_stack, account_settings, app, tmp_path):
    assert app.test_client().get("/signup").status_code == 404
    open_app = create_app(
        {
            "FACEBLUR_SETTINGS": app.extensions["faceblur"].settings,
            "FACEBLUR_ACCOUNTS": replace(account_settings, signup=True),
        }
    )
    client = open_app.test_client()
    name = unique("newcomer")
    token = token_of(client, "/signup")
    differ = client.post(
        "/signup",
        data={"csrf_token": token, "name": name, "password": PASSWORD, "password_again": "x"},
    )
    assert differ.status_code == 400
    made = client.post(
        "/signup",
        data={"csrf_token": token, "name": name, "password": PASSWORD, "password_again": PASSWORD},
    )
    assert made.status_code == 302
    assert client.get("/account").status_code == 200
    assert auth_stack.accounts.user(name) is not None


def test_one_photo_is_deleted_only_by_its_owner(app, auth_stack, s3, photo):
    ann, bob = person(app, auth_stack, "ann"), person(app, auth_stack, "bob")
    mine = upload(ann, photo)["key"]
    theirs = upload(bob, photo)["key"]
    assert ann.get(f"/delete/{theirs}").status_code == 404
    refused = ann.post(f"/delete/{theirs}", data={"csrf_token": token_of(ann, "/")})
    assert refused.status_code == 404 and theirs in s3.snapshot()["results"]
    deleted = ann.post(f"/delete/{mine}", data={"csrf_token": token_of(ann, "/")})
    assert deleted.status_code == 200
    snapshot = s3.snapshot()
    assert snapshot["results"] == [theirs] and len(snapshot["originals"]) == 1


def test_accounts_on_without_the_internal_token_refuse_to_start(app, account_settings):
    with pytest.raises(ConfigError, match="faceblur-internal-token"):
        create_app(
            {
                "FACEBLUR_SETTINGS": app.extensions["faceblur"].settings,
                "FACEBLUR_ACCOUNTS": replace(account_settings, internal_token=None),
            }
        )


def test_signed_in_the_page_speaks_of_my_gallery_not_a_public_one(app, auth_stack):
    ann = person(app, auth_stack, "ann")
    page = ann.get("/").get_data(as_text=True)
    kept = " ".join(re.search(r'<p id="what-is-kept">(.*?)</p>', page, re.S).group(1).split())
    assert "public" not in kept and "your gallery, which only you see" in kept
    assert 'id="open-notice"' not in page  # accounts are on: nothing is open to all


def test_guessing_the_current_password_on_the_account_page_backs_off(app, auth_stack):
    app.extensions["faceblur-accounts"].signin_backoff = Backoff(clock=FakeClock())
    ann = person(app, auth_stack, "ann")
    token = token_of(ann, "/account")
    form = {"csrf_token": token, "new_password": "a new password here"}
    form["new_password_again"] = form["new_password"]
    statuses = [
        ann.post("/account/password", data={**form, "password": "a guess!!"}).status_code
        for _ in range(7)
    ]
    assert statuses == [400] * 6 + [429]
    assert ann.post("/account/password", data={**form, "password": PASSWORD}).status_code == 429
