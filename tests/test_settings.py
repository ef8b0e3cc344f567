"""One settings source: flags over FRESHREC_* variables over a TOML file over defaults, and
README's table generated from the settings class."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from api.cli import build_parser
from api.settings import Settings, from_args, readme_table, settings_table

ROOT = Path(__file__).resolve().parent.parent


def test_readme_settings_table_equals_the_settings_class():
    table = readme_table((ROOT / "README.md").read_text())
    assert table == settings_table(), "regenerate it: python -m api.settings --update-readme"


def test_every_setting_is_in_the_table_with_its_environment_variable():
    table = settings_table()
    for name in ("port", "redis_url", "engine.trend_half_life_h", "guard.enabled", "snapshots.every_events"):
        assert f"| `{name}` |" in table
    assert "`FRESHREC_ENGINE__TREND_HALF_LIFE_H`" in table and "`FRESHREC_SNAPSHOTS__EVERY_EVENTS`" in table


def test_a_setting_resolves_flag_over_env_over_toml_over_default(tmp_path, monkeypatch):
    toml = tmp_path / "freshrec.toml"
    toml.write_text('port = 8101\n[engine]\ntrend_half_life_h = 10.0\nn_factors = 8\n[guard]\nenabled = false\n')
    parser = build_parser()

    def resolve(*flags):
        return from_args(parser.parse_args(["serve", "--config", str(toml), *flags]))

    assert Settings.load().engine.trend_half_life_h == 36.0  # the default
    assert resolve().engine.trend_half_life_h == 10.0  # TOML over the default
    monkeypatch.setenv("FRESHREC_ENGINE__TREND_HALF_LIFE_H", "20")
    monkeypatch.setenv("FRESHREC_PORT", "8102")
    s = resolve()
    assert (s.engine.trend_half_life_h, s.port) == (20.0, 8102)  # env over TOML
    s = resolve("--engine.trend-half-life-h", "30", "--port", "8103")
    assert (s.engine.trend_half_life_h, s.port) == (30.0, 8103)  # flag over env
    assert s.engine.n_factors == 8 and s.guard.enabled is False  # untouched TOML values survive the merge
    assert resolve("--guard", "on").guard.enabled is True  # the short form is the same setting
    monkeypatch.setenv("FRESHREC_CONFIG", str(toml))
    assert Settings.load().engine.n_factors == 8  # the TOML file named by the environment


def test_unknown_or_invalid_settings_fail_naming_them(tmp_path, monkeypatch):
    with pytest.raises(ValidationError, match="n_factors"):
        Settings.load({"engine": {"n_factors": 0}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine]\nno_such_setting = 1\n")
    with pytest.raises(ValidationError, match="no_such_setting"):
        Settings.load(config_file=bad)
    with pytest.raises(FileNotFoundError):
        Settings.load(config_file=tmp_path / "missing.toml")


def test_secrets_have_no_flag_and_are_not_printed(monkeypatch):
    monkeypatch.setenv("FRESHREC_ADMIN_TOKEN", "s3cret")
    s = Settings.load()
    assert s.admin_token.get_secret_value() == "s3cret"
    assert s.redacted()["admin_token"] == "(set)" and "s3cret" not in str(s.redacted())
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--admin-token", "x"])


def test_invalid_settings_end_a_command_with_one_line_per_setting(capsys):
    """Not a pydantic traceback: exit 2, each bad setting named with what it got, a rule
    across settings in its own words."""
    from api.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--engine.explore-epsilon", "2", "--engine.n-factors", "x"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "freshrec serve: invalid settings" in err and "Traceback" not in err
    assert "engine.explore_epsilon: Input should be less than or equal to 1 (got '2')" in err
    assert "engine.n_factors:" in err
    with pytest.raises(SystemExit):
        main(["serve", "--policies.challenger", '{"ranker": "blend"}', "--policies.auto-promote", "true"])
    assert "  policies.auto_promote needs engine.log_slates true" in capsys.readouterr().err
