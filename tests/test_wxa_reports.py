"""Reports from the mini-program over real HTTP: photos checked by content and stripped of EXIF/GPS, the same
classification, routing, case, dispatch, group card and department copies as the chat, bad uploads refused
with nothing stored; a resident's own reports, their timeline and rating, their photos."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import ExifTags, Image
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import col, select

from bot.config import RoutingSettings, Settings, WxaSettings
from bot.ingest import process_batch
from handlers.geo import wgs84_to_gcj02
from models import Case, CaseEvent, Media, OutboxMessage, Report
from models.db import new_session, session_scope
from tests.conftest import FakeClock, LiveServer
from tests.factories import auth, make_district, make_person, token_for
from tests.fakes.wechat_api import FakeWeChat, jpeg_bytes
from tests.test_ingest import location, text

IN_A = wgs84_to_gcj02(114.505, 38.005)  # the point as the mini-program gives it (GCJ-02), inside grid A
IN_NO_GRID = wgs84_to_gcj02(116.40, 39.90)  # in China, outside the fixture district
TEXT = "小区门口的井盖丢了，很危险"


@pytest.fixture
def settings(settings: Settings, fake: FakeWeChat) -> Settings:
    """The mini-program pointed at the fake WeChat; the city-management department has a group (D01 is its)."""
    wxa = WxaSettings(
        appid=fake.wxa_appid,
        secret=SecretStr(fake.wxa_secret),
        api_base_url=fake.url + "/",  # type: ignore[attr-defined]
        max_report_bytes=3 * 1024 * 1024,
    )
    routing = RoutingSettings(departments={"城管": {"type": "wecom_robot", "key": "robot-chengguan"}})
    return settings.model_copy(update={"wxa": wxa, "routing": routing})


@pytest.fixture
def district(engine: Engine) -> None:
    with session_scope(engine) as session:
        make_district(session)


@pytest.fixture
def resident(http: httpx.Client, fake: FakeWeChat, district: None) -> str:
    """A resident's token, through the real login."""
    r = http.post("/api/v1/auth/wxa-login", json={"code": fake.login_code("oWXA-resident")})
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def gps_jpeg(width: int = 1200, height: int = 900) -> bytes:
    """A phone photo: JPEG with the camera's make and a GPS position in its EXIF."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "GridPhone"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (38.0, 0.0, 18.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (114.0, 30.0, 18.0)
    out = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(out, "JPEG", exif=exif)
    return out.getvalue()


def post_report(
    http: httpx.Client,
    token: str | None,
    text: str = TEXT,
    point: tuple[Any, Any] | None = IN_A,
    photos: list[tuple[str, bytes, str]] | None = None,
    **fields: str,
) -> httpx.Response:
    data = {"text": text, **fields}
    if point is not None:
        data.update(lng=str(point[0]), lat=str(point[1]))
    files = [("photos", photo) for photo in photos or []]
    headers = auth(token) if token else {}
    # without files httpx sends a urlencoded form, as wx.request does for a report without photos
    return http.post("/api/v1/reports", data=data, files=files, headers=headers)


def path_of(url: str) -> str:
    """Links carry app.public_base_url; the test app listens elsewhere."""
    assert url.startswith("http://127.0.0.1:8000/api/v1/reports/"), url
    return url.removeprefix("http://127.0.0.1:8000")


def counts(engine: Engine) -> dict[str, int]:
    with new_session(engine) as session:
        return {
            model.__name__: len(session.exec(select(model)).all())
            for model in (Report, Case, CaseEvent, Media, OutboxMessage)
        }


def media_files(settings: Settings) -> list[Path]:
    root = Path(settings.media.root)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


NOTHING = {"Report": 0, "Case": 0, "CaseEvent": 0, "Media": 0, "OutboxMessage": 0}


def test_a_photo_comes_back_without_its_gps_exif_and_the_case_goes_to_the_grid_of_its_point(
    http: httpx.Client, resident: str, engine: Engine, settings: Settings
) -> None:
    original = gps_jpeg()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the test photo has GPS
    r = post_report(http, resident, photos=[("IMG_0001.jpg", original, "image/jpeg")], address="阳光小区北门")
    assert r.status_code == 201, r.text
    filed = r.json()
    assert (filed["status"], filed["subcategory"], filed["needs_review"]) == ("dispatched", "D01", False)
    assert filed["status_name"] == "已交办网格" and filed["case_no"] in filed["message"]
    (photo,) = filed["photos"]

    served = http.get(path_of(photo["url"]), headers=auth(resident))
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    back = Image.open(io.BytesIO(served.content))
    assert back.size == (1200, 900)
    assert dict(back.getexif()) == {} and b"Exif" not in served.content and b"GridPhone" not in served.content
    for path in media_files(settings):  # the stored files (photo and thumbnail) have none either
        assert b"Exif" not in path.read_bytes() and b"GridPhone" not in path.read_bytes()
    thumb = http.get(path_of(photo["thumb_url"]), headers=auth(resident))
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.content)).size) <= 320

    with new_session(engine) as session:
        case = session.exec(select(Case)).one()
        events = session.exec(select(CaseEvent).order_by(col(CaseEvent.seq))).all()
        posts = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        report = session.get(Report, case.report_id)
    assert report is not None and report.channel == "wxa" and report.address == "阳光小区北门"
    assert [e.action for e in events] == ["report", "accept", "dispatch"]
    assert events[0].data["channel"] == "wxa" and events[2].data["grid"] == "A"
    assert events[2].note == "located by point"
    assert [(p.channel, p.target) for p in posts] == [("wecom_robot", "robot-A"), ("wecom_robot", "robot-chengguan")]
    card = posts[0].payload["markdown"]
    assert case.case_no in card and TEXT in card and "阳光小区北门" in card
    assert f"[现场照片](http://127.0.0.1:8000/m/cases/{case.case_no}/photos/{photo['id']})" in card
    assert "【抄送·城管】" in posts[1].payload["markdown"]


def test_a_mini_program_case_is_the_case_the_chat_opens_for_the_same_report(
    http: httpx.Client, resident: str, engine: Engine, live: LiveServer
) -> None:
    """One submission for both doors: the same row and history but for the channel."""
    assert post_report(http, resident, text="幸福小区3号楼门口的井盖丢了", point=IN_A).status_code == 201
    state = live.server.config.app.state  # type: ignore[attr-defined]
    chat = [location("oChat", 114.505, 38.005), text("oChat", "幸福小区3号楼门口的井盖丢了")]
    process_batch(state, chat, float("inf"))
    with new_session(engine) as session:
        cases = session.exec(select(Case).order_by(col(Case.id))).all()
        assert len(cases) == 2
        histories = [
            [
                (e.action, e.to_status, e.actor_role, e.note, {k: v for k, v in e.data.items() if k != "report_id"})
                for e in session.exec(select(CaseEvent).where(CaseEvent.case_id == c.id).order_by(col(CaseEvent.seq)))
            ]
            for c in cases
        ]
    skip = {"id", "case_no", "report_id", "reporter_id", "last_event_hash"}
    rows = [{k: v for k, v in c.model_dump().items() if k not in skip} for c in cases]
    assert rows[0] == rows[1] and rows[0]["status"] == "dispatched"
    wxa, chat = histories
    assert wxa[0][4] == {"channel": "wxa"} and chat[0][4] == {"channel": "mp"}
    assert wxa[1:] == chat[1:] and wxa[0][:4] == chat[0][:4]


def test_a_renamed_text_file_is_refused_and_nothing_is_stored(
    http: httpx.Client, resident: str, engine: Engine, settings: Settings
) -> None:
    fake_photo = ("scene.jpg", "这不是照片，只是一段文字。".encode() * 20, "image/jpeg")
    r = post_report(http, resident, photos=[("ok.jpg", jpeg_bytes(), "image/jpeg"), fake_photo])
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "not_a_photo" and "photo 2" in r.json()["message"]
    assert r.json()["user_message"] == "第2张照片不是有效的图片（只接受JPEG、PNG、WebP），请换一张。"
    assert counts(engine) == NOTHING and media_files(settings) == []


def test_text_that_reports_nothing_is_422_in_chinese_and_opens_nothing(
    http: httpx.Client, resident: str, engine: Engine, settings: Settings
) -> None:
    r = post_report(http, resident, text="你好", photos=[("a.jpg", jpeg_bytes(), "image/jpeg")])
    assert r.status_code == 422
    assert r.json()["error"] == "not_a_report" and "在哪里、发生了什么" in r.json()["user_message"]
    assert counts(engine) == NOTHING and media_files(settings) == []


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"point": ("东经114度", "38.0")}, "invalid_input"),
        ({"point": ("nan", "38.0")}, "invalid_input"),
        ({"point": (2.3522, 48.8566)}, "outside_china"),  # Paris
        ({"point": None}, "invalid_input"),
        ({"text": "   "}, "invalid_input"),
        ({"text": "井盖丢了" * 600}, "invalid_input"),
        ({"photos": [("p.jpg", jpeg_bytes(), "image/jpeg")] * 10}, "too_many_photos"),
        ({"photos": [("p.jpg", jpeg_bytes(), "image/jpeg")] * 12}, "too_many_photos"),
    ],
)
def test_bad_input_is_a_clear_4xx_and_changes_nothing(
    http: httpx.Client, resident: str, engine: Engine, settings: Settings, fields: dict[str, Any], error: str
) -> None:
    r = post_report(http, resident, **fields)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == error and r.json()["user_message"]
    assert counts(engine) == NOTHING and media_files(settings) == []


def test_an_oversize_upload_is_413_and_changes_nothing(
    http: httpx.Client, resident: str, engine: Engine, settings: Settings
) -> None:
    noise = Image.effect_noise((1800, 1800), 90).convert("RGB")
    big = io.BytesIO()
    noise.save(big, "JPEG", quality=100)
    assert len(big.getvalue()) > settings.wxa.max_report_bytes
    r = post_report(http, resident, photos=[("big.jpg", big.getvalue(), "image/jpeg")])
    assert r.status_code == 413 and r.json()["error"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds on what actually arrives
        boundary = b"--b0undary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="text"\r\n\r\n' + TEXT.encode() + b"\r\n"
        yield boundary + b'\r\nContent-Disposition: form-data; name="photos"; filename="a.jpg"\r\n\r\n'
        for _ in range(40):
            yield b"\xff" * 100_000

    streamed = http.post(
        "/api/v1/reports",
        content=chunks(),
        headers={**auth(resident), "content-type": "multipart/form-data; boundary=b0undary"},
    )
    assert streamed.status_code == 413
    assert counts(engine) == NOTHING and media_files(settings) == []


def test_reports_need_a_token_and_a_form_body(http: httpx.Client, resident: str, engine: Engine) -> None:
    assert post_report(http, None).status_code == 401
    r = http.post("/api/v1/reports", json={"text": TEXT, "lng": IN_A[0], "lat": IN_A[1]}, headers=auth(resident))
    assert r.status_code == 415
    assert counts(engine) == NOTHING


def test_a_multipart_report_without_photos_is_filed_like_a_urlencoded_one(
    http: httpx.Client, resident: str, engine: Engine
) -> None:
    empty_file_input = [("photos", ("", b"", "application/octet-stream"))]  # what a form with no file chosen sends
    fields = {"text": TEXT, "lng": str(IN_A[0]), "lat": str(IN_A[1])}
    multipart = http.post("/api/v1/reports", data=fields, files=empty_file_input, headers=auth(resident))
    assert multipart.status_code == 201 and multipart.json()["photos"] == []
    urlencoded = post_report(http, resident)
    assert urlencoded.status_code == 201 and urlencoded.json()["status"] == multipart.json()["status"] == "dispatched"
    assert counts(engine)["Media"] == 0


def test_a_report_outside_every_grid_waits_for_an_operator(http: httpx.Client, resident: str, engine: Engine) -> None:
    r = post_report(http, resident, point=IN_NO_GRID)
    assert r.status_code == 201 and r.json()["status"] == "reported" and r.json()["needs_review"] is True
    with new_session(engine) as session:
        assert session.exec(select(Case)).one().review_reason == "the point is outside every grid"
        assert session.exec(select(OutboxMessage)).all() == []


def staff_token(engine: Engine, clock: FakeClock, login: str, roles: list[str], grids: list[str]) -> str:
    with session_scope(engine) as session:
        return token_for(session, make_person(session, login, roles, grids), clock())


def resolve(http: httpx.Client, engine: Engine, clock: FakeClock, case_no: str) -> None:
    worker = staff_token(engine, clock, "wa", ["grid_worker"], ["A"])
    assert http.post(f"/api/v1/cases/{case_no}/actions/take", json={}, headers=auth(worker)).status_code == 200
    r = http.post(f"/api/v1/cases/{case_no}/actions/resolve", json={"note": "已更换井盖"}, headers=auth(worker))
    assert r.status_code == 200, r.text


def test_my_reports_show_status_and_the_public_timeline_without_staff_names(
    http: httpx.Client, resident: str, fake: FakeWeChat, engine: Engine, clock: FakeClock
) -> None:
    case_no = post_report(http, resident, photos=[("a.jpg", jpeg_bytes(), "image/jpeg")]).json()["case_no"]
    clock.advance(minutes=5)
    resolve(http, engine, clock, case_no)
    mine = http.get("/api/v1/reports/mine", headers=auth(resident))
    assert mine.status_code == 200
    (item,) = mine.json()["items"]
    assert (item["case_no"], item["status"], item["status_name"], item["can_rate"]) == (
        case_no,
        "resolved",
        "已办结",
        True,
    )
    assert item["subcategory_name"] and item["text"] == TEXT and len(item["photos"]) == 1
    steps = item["timeline"]
    assert [(s["action"], s["action_name"]) for s in steps] == [
        ("report", "登记"),
        ("accept", "受理"),
        ("dispatch", "交办"),
        ("take", "接单"),
        ("resolve", "办结"),
    ]
    assert [s["note"] for s in steps] == ["", "", "", "", "已更换井盖"]  # "located by point" is internal
    assert "用户wa" not in mine.text and "actor" not in steps[0]
    other = http.post("/api/v1/auth/wxa-login", json={"code": fake.login_code("oWXA-other")}).json()["token"]
    assert http.get("/api/v1/reports/mine", headers=auth(other)).json() == {
        "items": [],
        "total": 0,
        "limit": 20,
        "offset": 0,
    }
    assert http.get(path_of(item["photos"][0]["url"]), headers=auth(other)).status_code == 404


def test_rating_after_resolution_and_only_once(
    http: httpx.Client, resident: str, fake: FakeWeChat, engine: Engine, clock: FakeClock
) -> None:
    case_no = post_report(http, resident).json()["case_no"]
    early = http.post(f"/api/v1/reports/{case_no}/rating", json={"rating": 5}, headers=auth(resident))
    assert early.status_code == 409 and early.json()["user_message"] == "该事件还没有办结，办结后再请您评价。"
    resolve(http, engine, clock, case_no)
    other = http.post("/api/v1/auth/wxa-login", json={"code": fake.login_code("oWXA-other")}).json()["token"]
    assert http.post(f"/api/v1/reports/{case_no}/rating", json={"rating": 1}, headers=auth(other)).status_code == 404
    assert http.post(f"/api/v1/reports/{case_no}/rating", json={"rating": 6}, headers=auth(resident)).status_code == 422
    r = http.post(f"/api/v1/reports/{case_no}/rating", json={"rating": 5}, headers=auth(resident))
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["reopened"], r.json()["message"]) == ("rated", False, "感谢您的评价！")
    again = http.post(f"/api/v1/reports/{case_no}/rating", json={"rating": 1}, headers=auth(resident))
    assert again.status_code == 409 and case_no in again.json()["user_message"]
    with new_session(engine) as session:
        case = session.exec(select(Case)).one()
        assert (case.status, case.rating) == ("rated", 5)


def test_an_unsatisfied_rating_reopens_the_case_as_in_the_chat(
    http: httpx.Client, resident: str, engine: Engine, clock: FakeClock
) -> None:
    case_no = post_report(http, resident).json()["case_no"]
    resolve(http, engine, clock, case_no)
    r = http.post(f"/api/v1/reports/{case_no}/rating", json={"rating": 2}, headers=auth(resident))
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["status_name"], r.json()["reopened"]) == ("reopened", "重新办理中", True)
    assert [(s["action"], s["note"]) for s in r.json()["timeline"][-2:]] == [("rate", ""), ("reopen", "居民评价不满意")]
    with new_session(engine) as session:
        case = session.exec(select(Case)).one()
        assert (case.status, case.rating, case.reopen_count) == ("reopened", 2, 1)


def test_staff_of_the_grid_see_the_photo_and_others_get_404(
    http: httpx.Client, resident: str, engine: Engine, clock: FakeClock
) -> None:
    filed = post_report(http, resident, photos=[("a.jpg", jpeg_bytes(), "image/jpeg")]).json()
    url = path_of(filed["photos"][0]["url"])
    worker_b = staff_token(engine, clock, "wb", ["grid_worker"], ["B"])
    worker_a = staff_token(engine, clock, "wa", ["grid_worker"], ["A"])
    assert http.get(url, headers=auth(worker_a)).status_code == 200
    assert http.get(url, headers=auth(worker_b)).status_code == 404
    missing = url.replace(f"/photos/{filed['photos'][0]['id']}", "/photos/999")
    assert http.get(missing, headers=auth(resident)).status_code == 404
    assert http.get(url).status_code == 401


def test_openapi_documents_the_mini_program_endpoints(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    assert "/api/v1/auth/wxa-login" in paths and "/api/v1/reports/mine" in paths
    form = paths["/api/v1/reports"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(form["required"]) == {"text", "lng", "lat"} and form["properties"]["photos"]["maxItems"] == 9
    assert {"413", "422"} <= set(paths["/api/v1/reports"]["post"]["responses"])
    assert "/api/v1/reports/{case_no}/rating" in paths and "/api/v1/reports/{case_no}/photos/{media_id}" in paths
