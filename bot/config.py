"""Settings: config.yaml, overridden by GRIDBOT_<SECTION>__<KEY> environment variables, validated once.

`load_settings()` returns a frozen object; nothing here runs at import time, so tests build `Settings`
directly or call `load_settings(path, environ)` with their own dict.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import date, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from sqlalchemy.engine import make_url

from classifier.taxonomy import default_taxonomy
from handlers.notify import channel_problem
from handlers.worktime import work_calendar

ENV_PREFIX = "GRIDBOT_"
CONFIG_ENV = "GRIDBOT_CONFIG"  # path of the config file; not a setting itself
REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A configuration problem, worded for the person starting the service."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AppSettings(_Section):
    demo: bool = True
    timezone: str = "Asia/Shanghai"
    public_base_url: str = "http://127.0.0.1:8000"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    timers: Literal["in_process", "off"] = "in_process"  # off: run `gridbot scheduler` as its own process

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value


class DatabaseSettings(_Section):
    url: str = "sqlite:///var/gridbot.db"
    echo: bool = False
    busy_timeout_ms: int = Field(default=5000, ge=0)


class MediaSettings(_Section):
    root: str = "var/media"
    max_image_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_voice_bytes: int = Field(default=2 * 1024 * 1024, gt=0)
    max_attempts: int = Field(default=6, gt=0)


class WechatSettings(_Section):
    token: SecretStr = SecretStr("gridbot-dev-token")
    appid: str = ""
    secret: SecretStr = SecretStr("")
    aes_key: SecretStr = SecretStr("")
    encrypt_mode: Literal["plain", "compatible", "safe"] = "plain"
    api_base_url: str = "https://api.weixin.qq.com/"
    timestamp_window_seconds: int = Field(default=300, gt=0)
    max_body_bytes: int = Field(default=65536, gt=0)
    defer_after_ms: int = Field(default=2000, gt=0)  # queued longer: store only, answer "success", handle later
    template_case_update: str = ""  # template id for case updates outside the 48-hour customer-service window
    menu: list[dict[str, Any]] = Field(
        default_factory=lambda: [
            {"type": "click", "name": "我要上报", "key": "REPORT"},
            {"type": "click", "name": "我的上报", "key": "MY_REPORTS"},
            {"type": "click", "name": "使用帮助", "key": "HELP"},
        ]
    )


class WxaSettings(_Section):
    appid: str = ""
    secret: SecretStr = SecretStr("")
    api_base_url: str = "https://api.weixin.qq.com/"
    # jscode2session is the one outside call made while a request waits (a resident at the login screen).
    timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    # A whole report upload (text, place, up to 9 photos); each photo also within media.max_image_bytes.
    max_report_bytes: int = Field(default=40 * 1024 * 1024, gt=0)


class WecomSettings(_Section):
    api_base_url: str = "https://qyapi.weixin.qq.com/"
    # The self-built WeCom application (自建应用) that created the grids' app chats (wecom_appchat channels).
    corpid: str = ""
    secret: SecretStr = SecretStr("")  # the application's own secret; from GRIDBOT_WECOM__SECRET
    agentid: int | None = None  # the application's id; names its access token in service_tokens


class UrgencyMinutes(_Section):
    urgent: int = Field(gt=0)
    normal: int = Field(gt=0)


class SubcategoryDeadlines(_Section):
    accept_minutes: int | None = Field(default=None, gt=0)
    resolve_hours: int | None = Field(default=None, gt=0)


class SlaSettings(_Section):
    accept_minutes: UrgencyMinutes = UrgencyMinutes(urgent=15, normal=30)
    resolve_hours: UrgencyMinutes = UrgencyMinutes(urgent=24, normal=40)
    # Office hours on working days; normal cases count their deadlines in this time, urgent ones in clock time.
    work_hours: list[str] = ["09:00-12:00", "13:00-18:00"]
    # Days the installed chinesecalendar does not know yet (next year's schedule, a local holiday).
    extra_holidays: list[date] = []
    extra_workdays: list[date] = []
    remind_share: float = Field(default=0.75, gt=0, lt=1)  # remind the group this far along to a deadline
    # While resolution stays overdue, the next grid up is told after each such period (督办).
    supervise_every_minutes: UrgencyMinutes = UrgencyMinutes(urgent=60, normal=480)
    digest_at: str = "08:30"  # local time of the daily digest to every grid group
    # Subcategories with deadlines of their own (in the time their urgency counts), e.g. C03 gas: 5 min / 4 h.
    by_subcategory: dict[str, SubcategoryDeadlines] = {}

    @field_validator("by_subcategory")
    @classmethod
    def _known_subcategories(cls, value: dict[str, SubcategoryDeadlines]) -> dict[str, SubcategoryDeadlines]:
        unknown = [code for code in value if code not in default_taxonomy().subcategories]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not subcategory codes")
        return value

    @field_validator("digest_at")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        try:
            time.fromisoformat(value)
        except ValueError:
            raise ValueError(f"digest_at must be a time of day like '08:30', not {value!r}") from None
        return value

    @field_validator("work_hours")
    @classmethod
    def _office_hours(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one office-hours window is needed")
        work_calendar(ZoneInfo("Asia/Shanghai"), value)  # raises ValueError naming the bad window
        return value


class ClassifierSettings(_Section):
    rules_dir: str | None = None  # default: the rules shipped in classifier/rules
    cache_dir: str = "var/cache"  # jieba's dictionary cache
    review_below: float = Field(default=0.5, ge=0, le=1)


class OutboxSettings(_Section):
    max_attempts: int = Field(default=8, gt=0)
    backoff_base_seconds: float = Field(default=5, gt=0)
    backoff_max_seconds: float = Field(default=1800, gt=0)
    robot_per_minute: int = Field(default=20, gt=0)  # WeCom's limit per group robot
    batch: int = Field(default=20, gt=0)


class IntakeSettings(_Section):
    draft_idle_minutes: int = Field(default=10, gt=0)  # a draft with text and place is submitted after this
    draft_expire_hours: int = Field(default=24, gt=0)  # an incomplete draft is dropped after this


class AuthSettings(_Section):
    token_ttl_hours: int = Field(default=720, gt=0)


class RoutingSettings(_Section):
    # Department work groups, by the taxonomy's department names, e.g. 派出所: {type: wecom_robot, key: ...}.
    departments: dict[str, dict[str, Any]] = {}
    # Subcategory → the departments told when a case is dispatched; a subcategory not listed tells its taxonomy
    # default department (if that department has a channel above); [] tells nobody.
    told_for: dict[str, list[str]] = {}

    @field_validator("departments")
    @classmethod
    def _known_departments(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        known = default_taxonomy().department_types
        for name, channel in value.items():
            if name not in known:
                raise ValueError(f"{name!r} is not a department of the taxonomy ({', '.join(known)})")
            problem = channel_problem(channel)
            if problem is None and channel.get("type") == "mp_template_workers":
                problem = "mp_template_workers reaches a grid's workers; a department needs a group channel"
            if problem is not None:
                raise ValueError(f"department {name!r}: {problem}")
        return value

    @field_validator("told_for")
    @classmethod
    def _known_codes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        taxonomy = default_taxonomy()
        for code, names in value.items():
            if code not in taxonomy.subcategories:
                raise ValueError(f"{code!r} is not a subcategory code")
            unknown = [n for n in names if n not in taxonomy.department_types]
            if unknown:
                raise ValueError(f"{code}: {', '.join(unknown)} not departments of the taxonomy")
        return value


class ActivitiesSettings(_Section):
    # The sign-up link in group cards; {base} is app.public_base_url, {id} the activity. Point it at the
    # mini-program's page (a URL Link) in production.
    signup_url: str = "{base}/m/activities/{id}"
    checkin_radius_m: int = Field(default=300, gt=0, le=5000)  # default geofence around the meeting point
    grace_minutes: int = Field(default=30, ge=0, le=240)  # check-in opens this early, check-out closes this late
    signup_closes_hours: float = Field(default=12, ge=0)  # default sign-up deadline before the start
    generate_days_ahead: int = Field(default=35, gt=0, le=366)  # occurrences of a series are created this far ahead
    max_ahead: int = Field(default=6, gt=0, le=60)  # and at most this many per series
    max_capacity: int = Field(default=1000, gt=0)

    @field_validator("signup_url")
    @classmethod
    def _link_template(cls, value: str) -> str:
        try:
            link = value.format(base="http://x", id=1)
        except (KeyError, IndexError, ValueError):
            raise ValueError("signup_url may use only {base} and {id}") from None
        if "{id}" not in value or not link.startswith(("http://", "https://")):
            raise ValueError("signup_url must be an http(s) link containing {id}")
        return value


class PointsSettings(_Section):
    activity_per_hour: int = Field(default=2, ge=0, le=100)  # default rule of a new activity: 1 point per 30 min
    activity_cap: int | None = Field(default=8, gt=0)  # default cap per person and activity (null: none)
    report_resolved: int = Field(default=5, ge=0, le=1000)  # the reporter of a case that was resolved and rated/closed
    max_adjustment: int = Field(default=1000, gt=0)  # largest manual adjustment an admin may make at once


class Settings(_Section):
    app: AppSettings = AppSettings()
    database: DatabaseSettings = DatabaseSettings()
    media: MediaSettings = MediaSettings()
    wechat: WechatSettings = WechatSettings()
    wxa: WxaSettings = WxaSettings()
    wecom: WecomSettings = WecomSettings()
    sla: SlaSettings = SlaSettings()
    classifier: ClassifierSettings = ClassifierSettings()
    outbox: OutboxSettings = OutboxSettings()
    intake: IntakeSettings = IntakeSettings()
    auth: AuthSettings = AuthSettings()
    routing: RoutingSettings = RoutingSettings()
    activities: ActivitiesSettings = ActivitiesSettings()
    points: PointsSettings = PointsSettings()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.app.timezone)


def find_config_file(environ: Mapping[str, str]) -> Path | None:
    if environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV])
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={path}: no such file")
        return path
    for candidate in (Path.cwd() / "config.yaml", REPO_ROOT / "config.yaml"):
        if candidate.is_file():
            return candidate
    return None


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file, apply environment overrides, validate. Raises ConfigError naming the key."""
    environ = os.environ if environ is None else environ
    path = path if path is not None else find_config_file(environ)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data = loaded or {}
    sources = {key: str(path) if path else "defaults" for key in _leaf_keys(data)}
    # Start from the defaults so that one nested key can be overridden alone (GRIDBOT_SLA__ACCEPT_MINUTES__URGENT).
    data = _deep_merge(Settings().model_dump(), data)
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        keys = [part.lower() for part in var[len(ENV_PREFIX) :].split("__")]
        _set_path(data, keys, _env_value(value), var)
        sources[".".join(keys)] = f"environment variable {var}"
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources)) from None
    return _resolve_paths(settings, path.parent if path else Path.cwd())


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _env_value(value: str) -> Any:
    # Nested sections may be given whole as JSON; scalars stay strings and pydantic converts them,
    # so a numeric-looking token such as "123456" is never turned into an int.
    if value.strip().startswith(("{", "[")):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _set_path(data: dict[str, Any], keys: list[str], value: Any, var: str) -> None:
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{var}: {key} is not a section")
        node = child
    node[keys[-1]] = value


def _leaf_keys(data: Any, prefix: str = "") -> list[str]:
    if not isinstance(data, dict):
        return [prefix] if prefix else []
    keys: list[str] = []
    for key, value in data.items():
        keys.extend(_leaf_keys(value, f"{prefix}.{key}" if prefix else str(key)))
    return keys


def _describe(exc: ValidationError, sources: dict[str, str]) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        source = sources.get(key) or next(
            (src for name, src in sources.items() if name.startswith(key + ".")), "config"
        )
        if error["type"] == "extra_forbidden":
            lines.append(f"unknown configuration key '{key}' (from {source})")
        else:
            lines.append(f"configuration key '{key}': {error['msg']} (from {source})")
    return "; ".join(lines)


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """Relative SQLite and media paths are relative to the config file, not to the working directory."""
    url = make_url(settings.database.url)
    database = settings.database
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        db_path = Path(url.database)
        if not db_path.is_absolute():
            database = database.model_copy(
                update={"url": url.set(database=str((base / db_path).resolve())).render_as_string(False)}
            )
    media = settings.media
    if not Path(media.root).is_absolute():
        media = media.model_copy(update={"root": str((base / media.root).resolve())})
    classifier = settings.classifier
    updates: dict[str, Any] = {}
    if not Path(classifier.cache_dir).is_absolute():
        updates["cache_dir"] = str((base / classifier.cache_dir).resolve())
    if classifier.rules_dir and not Path(classifier.rules_dir).is_absolute():
        updates["rules_dir"] = str((base / classifier.rules_dir).resolve())
    classifier = classifier.model_copy(update=updates)
    return settings.model_copy(update={"database": database, "media": media, "classifier": classifier})
