"""Configuration: YAML, environment overrides by GRIDBOT_<SECTION>__<KEY>, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import REPO_ROOT, ConfigError, load_settings


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_the_shipped_config_loads_with_demo_on() -> None:
    settings = load_settings(REPO_ROOT / "config.yaml", environ={})
    assert settings.app.demo is True
    assert settings.database.url.startswith("sqlite:///")
    assert settings.wechat.encrypt_mode == "plain"


def test_environment_overrides_every_fixed_name(tmp_path: Path) -> None:
    env = {
        "GRIDBOT_DATABASE__URL": "postgresql+psycopg://u:p@127.0.0.1/gridbot",
        "GRIDBOT_MEDIA__ROOT": "/srv/media",
        "GRIDBOT_WECHAT__TOKEN": "tok",
        "GRIDBOT_WECHAT__APPID": "wx123",
        "GRIDBOT_WECHAT__SECRET": "s3cr3t",
        "GRIDBOT_WECHAT__AES_KEY": "k" * 43,
        "GRIDBOT_WECHAT__ENCRYPT_MODE": "safe",
        "GRIDBOT_WECHAT__API_BASE_URL": "http://127.0.0.1:9999/",
        "GRIDBOT_WXA__APPID": "wxa1",
        "GRIDBOT_WXA__SECRET": "wxs",
        "GRIDBOT_WECOM__API_BASE_URL": "http://127.0.0.1:9998/",
        "GRIDBOT_APP__DEMO": "false",
    }
    s = load_settings(write(tmp_path, "app:\n  demo: true\n"), environ=env)
    assert s.database.url == env["GRIDBOT_DATABASE__URL"]
    assert s.media.root == "/srv/media"
    assert s.wechat.token.get_secret_value() == "tok"
    assert s.wechat.appid == "wx123"
    assert s.wechat.secret.get_secret_value() == "s3cr3t"
    assert s.wechat.aes_key.get_secret_value() == "k" * 43
    assert s.wechat.encrypt_mode == "safe"
    assert s.wechat.api_base_url == "http://127.0.0.1:9999/"
    assert (s.wxa.appid, s.wxa.secret.get_secret_value()) == ("wxa1", "wxs")
    assert s.wecom.api_base_url == "http://127.0.0.1:9998/"
    assert s.app.demo is False


def test_nested_keys_and_numeric_strings(tmp_path: Path) -> None:
    env = {"GRIDBOT_SLA__ACCEPT_MINUTES__URGENT": "5", "GRIDBOT_WECHAT__TOKEN": "123456"}
    s = load_settings(write(tmp_path, ""), environ=env)
    assert s.sla.accept_minutes.urgent == 5
    assert s.sla.accept_minutes.normal == 30
    assert s.wechat.token.get_secret_value() == "123456"


def test_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown configuration key 'database\.urll'"):
        load_settings(write(tmp_path, "database:\n  urll: sqlite:///x.db\n"), environ={})


def test_unknown_environment_key_is_named_with_its_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GRIDBOT_WECHAT__TOKN"):
        load_settings(write(tmp_path, ""), environ={"GRIDBOT_WECHAT__TOKN": "x"})


def test_wrong_type_is_named_with_its_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'sla\.resolve_hours\.normal'.*config\.yaml"):
        load_settings(write(tmp_path, "sla:\n  resolve_hours:\n    normal: lots\n"), environ={})
    with pytest.raises(ConfigError, match=r"'wechat\.encrypt_mode'.*GRIDBOT_WECHAT__ENCRYPT_MODE"):
        load_settings(write(tmp_path, ""), environ={"GRIDBOT_WECHAT__ENCRYPT_MODE": "aes"})


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "database:\n  url: sqlite:///var/g.db\nmedia:\n  root: m\n"), environ={})
    assert s.database.url == f"sqlite:///{tmp_path / 'var' / 'g.db'}"
    assert s.media.root == str(tmp_path / "m")


def test_secrets_never_appear_in_repr_or_str(tmp_path: Path) -> None:
    env = {"GRIDBOT_WECHAT__SECRET": "very-secret-value", "GRIDBOT_WECHAT__AES_KEY": "aes-secret-value"}
    s = load_settings(write(tmp_path, ""), environ=env)
    dumped = repr(s) + str(s) + s.model_dump_json()
    assert "very-secret-value" not in dumped and "aes-secret-value" not in dumped


def test_settings_are_frozen() -> None:
    s = load_settings(REPO_ROOT / "config.yaml", environ={})
    with pytest.raises(Exception, match="frozen"):
        s.app.demo = False  # type: ignore[misc]


def test_broken_yaml_is_reported_with_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "app: [unclosed\n"), environ={})
