"""The case page behind a group card's link (/m/cases/<no>), over real HTTP: login, acting, photos, refusals."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import Engine
from sqlmodel import col, select

from bot.config import Settings
from bot.sla import sla_policy
from bot.storage import LocalMediaStore
from handlers import texts
from handlers.cases import ActionInput, act_on_case, add_note, get_case
from handlers.people import get_person_by_login
from models import Case, CaseEvent, Media, OutboxMessage
from models.db import session_scope
from tests.conftest import FakeClock, LiveServer
from tests.factories import ZONE, actor_of, make_case, make_district, make_person

PASSWORD = "demo1234"
MAX_IMAGE_BYTES = 256 * 1024
REPORT_TEXT = "阳光小区北门井盖丢了，晚上很危险"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A small image limit, so that an oversize photo is quick to make."""
    return settings.model_copy(update={"media": settings.media.model_copy(update={"max_image_bytes": MAX_IMAGE_BYTES})})


@pytest.fixture
def case_no(engine: Engine, clock: FakeClock, settings: Settings) -> str:
    """People with passwords, and an urgent case (clock time: deadlines do not depend on the weekday) at grid A."""
    with session_scope(engine) as session:
        make_district(session)
        operator = make_person(session, "op", ["operator"], password=PASSWORD)
        make_person(session, "wa", ["grid_worker"], ["A"], password=PASSWORD)
        make_person(session, "wa2", ["grid_worker"], ["A"], password=PASSWORD)
        make_person(session, "wb", ["grid_worker"], ["B"], password=PASSWORD)
        resident = make_person(session, "res", ["resident"], password=PASSWORD)
        case = make_case(session, clock(), reporter=resident, text=REPORT_TEXT, urgent=True)
        actor = actor_of(session, operator)
        act_on_case(session, case.case_no, "accept", actor, clock(), sla_policy(settings))
        act_on_case(session, case.case_no, "dispatch", actor, clock(), sla_policy(settings), ActionInput(grid_code="A"))
        return case.case_no


@pytest.fixture
def browser(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=10, follow_redirects=False) as client:
        yield client


def new_browser(live: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=live.url, timeout=10, follow_redirects=False)


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden field {name} in the page"
    return found.group(1)


def form_actions(html: str, case_no: str) -> list[str]:
    return re.findall(rf'action="/m/cases/{case_no}/(\w+)"', html)


def log_in(client: httpx.Client, login: str, next_path: str) -> httpx.Response:
    form = client.get("/m/login", params={"next": next_path})
    assert form.status_code == 200
    return client.post(
        "/m/login",
        data={"login": login, "password": PASSWORD, "csrf": hidden(form.text, "csrf"), "next": next_path},
    )


def open_case(client: httpx.Client, case_no: str) -> httpx.Response:
    page = client.get(f"/m/cases/{case_no}")
    assert page.status_code == 200, page.text
    return page


def submit(
    client: httpx.Client,
    page: httpx.Response,
    case_no: str,
    action: str,
    files: list[object] | None = None,
    **fields: str,
) -> httpx.Response:
    data = {"csrf": hidden(page.text, "csrf"), "seen": hidden(page.text, "seen"), **fields}
    return client.post(f"/m/cases/{case_no}/{action}", data=data, files=files)


def jpeg_with_gps() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "HUAWEI"
    exif[0x8825] = {1: "N", 2: (38.0, 2.0, 30.0), 3: "E", 4: (114.0, 30.0, 15.0)}  # GPS IFD
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (180, 120, 60)).save(out, "JPEG", exif=exif)
    assert b"HUAWEI" in out.getvalue()
    return out.getvalue()


def events_of(engine: Engine, case_no: str) -> list[CaseEvent]:
    with session_scope(engine) as session:
        case = get_case(session, case_no)
        return list(session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.seq))))


def case_row(engine: Engine, case_no: str) -> Case:
    with session_scope(engine) as session:
        return get_case(session, case_no)


def stored_files(settings: Settings) -> list[Path]:
    root = Path(settings.media.root)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_a_worker_follows_the_link_logs_in_takes_adds_a_photo_without_gps_and_resolves(
    browser: httpx.Client, case_no: str, engine: Engine, settings: Settings, clock: FakeClock
) -> None:
    link = f"/m/cases/{case_no}"
    first = browser.get(link)
    assert first.status_code == 303 and first.headers["location"] == f"/m/login?next={link}"

    landed = log_in(browser, "wa", link)
    assert landed.status_code == 303 and landed.headers["location"] == link
    cookie = landed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/m" in cookie and "max-age=604800" in cookie

    page = open_case(browser, case_no)
    deadline = case_row(engine, case_no).accept_deadline
    assert deadline is not None
    for shown in (case_no, REPORT_TEXT, "已交办网格", "紧急", "网格A", texts.fmt_time(deadline, ZONE)):
        assert shown in page.text
    assert "已超时" not in page.text
    assert form_actions(page.text, case_no) == ["take", "note", "transfer", "suspend"]

    taken = submit(browser, page, case_no, "take")
    assert taken.status_code == 303 and taken.headers["location"] == f"{link}?done=take"
    page = browser.get(taken.headers["location"])
    assert "网格员已接单" in page.text and "用户wa" in page.text and texts.mobile_done("take") in page.text
    assert form_actions(page.text, case_no) == ["start", "resolve", "note", "transfer", "suspend"]

    clock.advance(minutes=5)
    photo = jpeg_with_gps()
    noted = submit(
        browser, page, case_no, "note", files=[("photos", ("site.jpg", photo, "image/jpeg"))], note="到场查看"
    )
    assert noted.status_code == 303, noted.text
    note_event = events_of(engine, case_no)[-1]
    assert note_event.action == "note" and note_event.note == "到场查看"
    with session_scope(engine) as session:
        media = session.exec(select(Media)).all()
    assert len(media) == 1 and note_event.attachments == [f"media:{media[0].id}"]
    assert media[0].case_event_id == note_event.id and media[0].status == "stored" and media[0].source == "upload"
    kept = (Path(settings.media.root) / str(media[0].path)).read_bytes()
    assert b"HUAWEI" not in kept
    with Image.open(io.BytesIO(kept)) as image:
        assert image.format == "JPEG" and image.size == (640, 480)
        assert not image.getexif() and "exif" not in image.info

    page = open_case(browser, case_no)
    assert f"/m/cases/{case_no}/photos/{media[0].id}?thumb=1" in page.text
    full = browser.get(f"/m/cases/{case_no}/photos/{media[0].id}")
    assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg" and full.content == kept
    thumb = browser.get(f"/m/cases/{case_no}/photos/{media[0].id}", params={"thumb": 1})
    assert thumb.status_code == 200
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert max(image.size) == 320

    resolved = submit(browser, page, case_no, "resolve", note="已更换井盖")
    assert resolved.status_code == 303
    page = browser.get(resolved.headers["location"])
    assert "已办结" in page.text and "已更换井盖" in page.text
    assert form_actions(page.text, case_no) == ["note"]
    assert [e.action for e in events_of(engine, case_no)][-4:] == ["dispatch", "take", "note", "resolve"]


def test_a_passed_deadline_is_marked_overdue(browser: httpx.Client, case_no: str, clock: FakeClock) -> None:
    log_in(browser, "wa", "/m/")
    clock.advance(minutes=16)  # urgent: 15 minutes to take
    assert "已超时" in open_case(browser, case_no).text


@pytest.mark.parametrize("token", ["", "forged-token"])
def test_a_post_without_the_right_csrf_token_is_403_and_changes_nothing(
    browser: httpx.Client, case_no: str, engine: Engine, token: str
) -> None:
    log_in(browser, "wa", "/m/")
    page = open_case(browser, case_no)
    r = browser.post(f"/m/cases/{case_no}/take", data={"csrf": token, "seen": hidden(page.text, "seen")})
    assert r.status_code == 403 and texts.MOBILE_PAGE["form_expired"] in r.text
    assert case_row(engine, case_no).status == "dispatched"
    assert [e.action for e in events_of(engine, case_no)] == ["report", "accept", "dispatch"]


def test_another_sessions_csrf_token_is_refused(
    live: LiveServer, browser: httpx.Client, case_no: str, engine: Engine
) -> None:
    log_in(browser, "wa", "/m/")
    with new_browser(live) as other:
        log_in(other, "wa2", "/m/")
        foreign = hidden(open_case(other, case_no).text, "csrf")
    page = open_case(browser, case_no)
    r = browser.post(f"/m/cases/{case_no}/take", data={"csrf": foreign, "seen": hidden(page.text, "seen")})
    assert r.status_code == 403
    assert case_row(engine, case_no).status == "dispatched"


def test_a_double_take_acts_once_and_shows_the_current_state(
    browser: httpx.Client, case_no: str, engine: Engine
) -> None:
    log_in(browser, "wa", "/m/")
    page = open_case(browser, case_no)
    assert submit(browser, page, case_no, "take").status_code == 303
    again = submit(browser, page, case_no, "take")  # the same form a second time
    assert again.status_code == 200
    assert "网格员已接单" in again.text and texts.MOBILE_PAGE["already_taken_by_you"] in again.text
    assert [e.action for e in events_of(engine, case_no)].count("take") == 1


def test_a_form_shown_before_a_colleague_acted_is_refused_with_the_current_state(
    live: LiveServer, browser: httpx.Client, case_no: str, engine: Engine
) -> None:
    log_in(browser, "wa", "/m/")
    stale = open_case(browser, case_no)
    with new_browser(live) as colleague:
        log_in(colleague, "wa2", "/m/")
        assert submit(colleague, open_case(colleague, case_no), case_no, "take").status_code == 303
    r = submit(browser, stale, case_no, "take")
    assert r.status_code == 409
    assert texts.MOBILE_PAGE["stale"] in r.text and "网格员已接单" in r.text and "用户wa2" in r.text
    assert case_row(engine, case_no).assignee_id == get_assignee_id(engine, "wa2")
    twice = submit(browser, stale, case_no, "note", note="同一张表单")
    assert twice.status_code == 409 and "同一张表单" in twice.text  # what was typed is kept
    assert [e.action for e in events_of(engine, case_no)].count("note") == 0


def get_assignee_id(engine: Engine, login: str) -> int | None:
    with session_scope(engine) as session:
        return get_person_by_login(session, login).id


def test_a_worker_of_grid_b_is_refused_on_a_case_of_grid_a_and_learns_nothing(
    live: LiveServer, browser: httpx.Client, case_no: str, engine: Engine
) -> None:
    log_in(browser, "wa", "/m/")
    page = open_case(browser, case_no)
    submit(browser, page, case_no, "note", files=[("photos", ("a.jpg", jpeg_with_gps(), "image/jpeg"))], note="现场")
    with session_scope(engine) as session:
        media_id = session.exec(select(Media.id)).one()
    with new_browser(live) as outsider:
        log_in(outsider, "wb", "/m/")
        r = outsider.get(f"/m/cases/{case_no}")
        assert r.status_code == 403 and texts.MOBILE_PAGE["forbidden"] in r.text
        for secret in (REPORT_TEXT, "已交办网格", "网格A", "现场"):
            assert secret not in r.text
        mine = outsider.get("/m/")
        taken = outsider.post(
            f"/m/cases/{case_no}/take",
            data={"csrf": hidden(mine.text, "csrf"), "seen": hidden(page.text, "seen")},
        )
        assert taken.status_code == 403 and REPORT_TEXT not in taken.text
        assert outsider.get(f"/m/cases/{case_no}/photos/{media_id}").status_code == 403
    assert case_row(engine, case_no).status == "dispatched"


def test_the_reporter_with_a_resident_account_gets_a_polite_refusal(browser: httpx.Client, case_no: str) -> None:
    log_in(browser, "res", "/m/")
    r = browser.get(f"/m/cases/{case_no}")
    assert r.status_code == 403 and REPORT_TEXT not in r.text


def test_someone_not_logged_in_gets_the_login_form_and_no_case_data(browser: httpx.Client, case_no: str) -> None:
    for path in (f"/m/cases/{case_no}", f"/m/cases/{case_no}/photos/1", "/m/cases/20991231-0001"):
        r = browser.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/m/login?next=")
        assert REPORT_TEXT not in r.text
    r = browser.post(f"/m/cases/{case_no}/take", data={"csrf": "x", "seen": "3"})
    assert r.status_code == 303 and r.headers["location"].startswith("/m/login")
    login = browser.get(r.headers["location"])
    assert login.status_code == 200 and "工作人员登录" in login.text and REPORT_TEXT not in login.text


def test_an_unknown_case_number_is_a_404_page_in_chinese(browser: httpx.Client, case_no: str) -> None:
    log_in(browser, "wa", "/m/")
    for path in ("/m/cases/20991231-0001", "/m/cases/not-a-number"):
        r = browser.get(path)
        assert r.status_code == 404 and texts.MOBILE_PAGE["not_found"] in r.text
        assert r.headers["content-type"].startswith("text/html")


def test_a_fake_or_oversize_image_is_refused_and_nothing_is_stored(
    browser: httpx.Client, case_no: str, engine: Engine, settings: Settings
) -> None:
    log_in(browser, "wa", "/m/")
    page = open_case(browser, case_no)
    noisy = io.BytesIO()
    Image.frombytes("RGB", (400, 400), bytes(range(256)) * 1875).effect_spread(50).save(noisy, "PNG")
    assert len(noisy.getvalue()) > MAX_IMAGE_BYTES
    attempts = {
        texts.bad_photo(2): [
            ("photos", ("ok.jpg", jpeg_with_gps(), "image/jpeg")),
            ("photos", ("fake.jpg", b"<html>not a photo</html>" * 20, "image/jpeg")),
        ],
        texts.photo_too_big(1, MAX_IMAGE_BYTES): [("photos", ("big.png", noisy.getvalue(), "image/png"))],
        texts.too_many_photos(9): [("photos", (f"{i}.jpg", jpeg_with_gps(), "image/jpeg")) for i in range(10)],
    }
    for message, files in attempts.items():
        r = submit(browser, page, case_no, "note", files=files, note="现场照片")
        assert r.status_code == 422 and message in r.text
        assert "现场照片" in r.text  # the note typed is still in the form
    with session_scope(engine) as session:
        assert session.exec(select(Media)).all() == []
    assert stored_files(settings) == []
    assert [e.action for e in events_of(engine, case_no)] == ["report", "accept", "dispatch"]


def test_an_empty_file_field_as_a_browser_sends_it_is_no_photo(
    browser: httpx.Client, case_no: str, engine: Engine
) -> None:
    log_in(browser, "wa", "/m/")
    page = open_case(browser, case_no)
    fields = {"csrf": hidden(page.text, "csrf"), "seen": hidden(page.text, "seen"), "note": "仅文字"}
    parts = [f'--b\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    parts.append('--b\r\nContent-Disposition: form-data; name="photos"; filename=""\r\n')
    parts.append("Content-Type: application/octet-stream\r\n\r\n\r\n--b--\r\n")
    r = browser.post(
        f"/m/cases/{case_no}/note",
        content="".join(parts).encode(),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 303, r.text
    assert events_of(engine, case_no)[-1].note == "仅文字" and events_of(engine, case_no)[-1].attachments == []


def test_transfer_needs_a_reason_and_a_listed_grid_then_tells_the_new_grids_group(
    browser: httpx.Client, case_no: str, engine: Engine
) -> None:
    log_in(browser, "wa", "/m/")
    page = open_case(browser, case_no)
    assert '<option value="B">网格B</option>' in page.text and '<option value="A">' not in page.text
    for fields, message in (
        ({"grid_code": "B"}, "need_transfer_reason"),
        ({"note": "不属于本网格"}, "need_transfer_target"),
        ({"note": "不属于本网格", "grid_code": "C"}, "bad_transfer_target"),
    ):
        r = submit(browser, page, case_no, "transfer", **fields)
        assert r.status_code == 422 and texts.MOBILE_PAGE[message] in r.text
    assert case_row(engine, case_no).status == "dispatched"

    moved = submit(browser, page, case_no, "transfer", note="位于胜利北大街，属网格B", grid_code="B")
    assert moved.status_code == 303
    after = browser.get(moved.headers["location"])
    assert after.status_code == 200 and texts.transferred_away("网格B") in after.text
    assert REPORT_TEXT not in after.text  # the case is no longer this worker's to see
    with session_scope(engine) as session:
        case = get_case(session, case_no)
        cards = session.exec(select(OutboxMessage).where(OutboxMessage.case_id == case.id)).all()
    assert case.status == "transferred"
    assert any(card.target == "robot-B" and f"/m/cases/{case_no}" in card.payload["markdown"] for card in cards)


def test_suspend_needs_a_reason_and_resume_gives_the_buttons_back(
    browser: httpx.Client, case_no: str, engine: Engine
) -> None:
    log_in(browser, "wa", "/m/")
    page = open_case(browser, case_no)
    r = submit(browser, page, case_no, "suspend")
    assert r.status_code == 422 and texts.MOBILE_PAGE["need_suspend_reason"] in r.text
    assert case_row(engine, case_no).suspended_at is None

    page = browser.get(submit(browser, page, case_no, "suspend", note="等待燃气公司").headers["location"])
    assert "时限暂停计时" in page.text and "接单时限" not in page.text
    assert form_actions(page.text, case_no) == ["take", "resume", "note", "transfer"]  # taking is not held up
    page = browser.get(submit(browser, page, case_no, "resume").headers["location"])
    assert form_actions(page.text, case_no) == ["take", "note", "transfer", "suspend"]
    assert [e.action for e in events_of(engine, case_no)][-2:] == ["suspend", "resume"]


def test_resolve_without_a_note_is_refused(browser: httpx.Client, case_no: str, engine: Engine) -> None:
    log_in(browser, "wa", "/m/")
    page = browser.get(submit(browser, open_case(browser, case_no), case_no, "take").headers["location"])
    r = submit(browser, page, case_no, "resolve", note="  ")
    assert r.status_code == 422 and texts.MOBILE_PAGE["need_resolve_note"] in r.text
    assert case_row(engine, case_no).status == "taken"


def test_an_action_this_person_may_not_take_now_is_refused_in_chinese(
    browser: httpx.Client, case_no: str, engine: Engine
) -> None:
    log_in(browser, "wa", "/m/")
    page = open_case(browser, case_no)
    r = submit(browser, page, case_no, "start")  # not offered: the case is not taken yet
    assert r.status_code == 409 and texts.staff_wrong_state("dispatched", "start") in r.text
    assert case_row(engine, case_no).status == "dispatched"


def test_login_refuses_a_wrong_password_and_a_missing_login_token(browser: httpx.Client, case_no: str) -> None:
    form = browser.get("/m/login")
    wrong = browser.post("/m/login", data={"login": "wa", "password": "nope", "csrf": hidden(form.text, "csrf")})
    assert wrong.status_code == 401 and texts.MOBILE_PAGE["login_failed"] in wrong.text
    assert "gridbot_m=" not in wrong.headers.get("set-cookie", "")
    unknown = browser.post(
        "/m/login", data={"login": "nobody", "password": PASSWORD, "csrf": hidden(form.text, "csrf")}
    )
    assert unknown.status_code == 401
    browser.cookies.clear()
    forged = browser.post("/m/login", data={"login": "wa", "password": PASSWORD, "csrf": "whatever"})
    assert forged.status_code == 403 and "gridbot_m=" not in forged.headers.get("set-cookie", "")


def test_login_never_sends_the_worker_to_another_site(browser: httpx.Client, case_no: str) -> None:
    for target in ("//evil.example/m/", "https://evil.example/", "/m/../api/v1/cases"):
        assert log_in(browser, "wa", target).headers["location"] == "/m/"
        browser.cookies.clear()


def test_logout_ends_the_session(live: LiveServer, browser: httpx.Client, case_no: str) -> None:
    log_in(browser, "wa", "/m/")
    page = open_case(browser, case_no)
    token = browser.cookies.get("gridbot_m")
    assert token
    out = browser.post("/m/logout", data={"csrf": hidden(page.text, "csrf")})
    assert out.status_code == 303 and out.headers["location"] == "/m/login?out=1"
    assert browser.get(f"/m/cases/{case_no}").status_code == 303
    with new_browser(live) as replay:  # the old cookie, kept by someone, is worth nothing now
        replay.cookies.set("gridbot_m", token, path="/m")
        assert replay.get(f"/m/cases/{case_no}").status_code == 303


def test_my_cases_lists_what_is_open_in_my_grids(live: LiveServer, browser: httpx.Client, case_no: str) -> None:
    log_in(browser, "wa", "/m/")
    assert f'href="/m/cases/{case_no}"' in browser.get("/m/").text
    with new_browser(live) as outsider:
        log_in(outsider, "wb", "/m/")
        mine = outsider.get("/m/")
        assert case_no not in mine.text and texts.MOBILE_PAGE["no_open_cases"] in mine.text


def test_the_residents_photos_show_as_thumbnails_and_those_still_coming_are_counted(
    browser: httpx.Client, case_no: str, engine: Engine, settings: Settings, clock: FakeClock
) -> None:
    photo = jpeg_with_gps()
    LocalMediaStore(settings.media.root).put("2026/11/ab/resident.jpg", photo)
    with session_scope(engine) as session:
        report_id = get_case(session, case_no).report_id
        stored = Media(
            report_id=report_id,
            kind="image",
            source="wechat",
            path="2026/11/ab/resident.jpg",
            content_type="image/jpeg",
            status="stored",
            created_at=clock(),
        )
        session.add_all([stored, Media(report_id=report_id, kind="image", wechat_media_id="w2", created_at=clock())])
        session.flush()
        stored_id = stored.id
    log_in(browser, "wa", "/m/")
    page = open_case(browser, case_no)
    assert f"/m/cases/{case_no}/photos/{stored_id}?thumb=1" in page.text
    assert texts.photos_pending(1) in page.text and texts.MOBILE_PAGE["no_photos"] not in page.text
    assert browser.get(f"/m/cases/{case_no}/photos/{stored_id}").content == photo


def test_a_media_reference_to_another_grids_photo_opens_nothing(
    live: LiveServer, browser: httpx.Client, case_no: str, engine: Engine, clock: FakeClock, settings: Settings
) -> None:
    with session_scope(engine) as session:
        other = make_case(session, clock(), text="幸福小区路灯不亮", urgent=True)
        operator = actor_of(session, get_person_by_login(session, "op"))
        act_on_case(session, other.case_no, "accept", operator, clock(), sla_policy(settings))
        act_on_case(
            session, other.case_no, "dispatch", operator, clock(), sla_policy(settings), ActionInput(grid_code="B")
        )
        other_no = other.case_no
    with new_browser(live) as worker_b:
        log_in(worker_b, "wb", "/m/")
        page = open_case(worker_b, other_no)
        files = [("photos", ("b.jpg", jpeg_with_gps(), "image/jpeg"))]
        assert submit(worker_b, page, other_no, "note", files=files, note="路灯").status_code == 303
    with session_scope(engine) as session:
        media_id = session.exec(select(Media.id)).one()
        # attachments through the staff API are free text: worker A names grid B's photo on grid A's case
        add_note(
            session, case_no, actor_of(session, get_person_by_login(session, "wa")), clock(), "", [f"media:{media_id}"]
        )
    log_in(browser, "wa", "/m/")
    page = open_case(browser, case_no)
    assert f"/photos/{media_id}" not in page.text and texts.other_attachments(1) in page.text
    assert browser.get(f"/m/cases/{case_no}/photos/{media_id}").status_code == 404
