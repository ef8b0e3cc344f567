"""Every setting freshrec runs with, from one place: command-line flags, then ``FRESHREC_*``
environment variables, then an optional TOML file, then the defaults (pydantic-settings).

One name per setting, spelled the same way in all three sources:

==========================  ==========================================  ========================
flag                        environment variable                        TOML
==========================  ==========================================  ========================
``--port 8001``             ``FRESHREC_PORT=8001``                      ``port = 8001``
``--engine.n-factors 32``   ``FRESHREC_ENGINE__N_FACTORS=32``           ``[engine] n_factors = 32``
==========================  ==========================================  ========================

The TOML file is ``--config FILE`` or ``FRESHREC_CONFIG``. Secrets (``snapshot_key``,
``admin_token``, ``api_keys``) have no flag (other users can read a process's argv): give
them in the environment or the TOML file. ``freshrec serve --print-config`` prints the effective
settings; ``python -m api.settings --update-readme`` regenerates README's settings table
from this class (a test checks that they agree).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
import typing
from pathlib import Path
from typing import Literal

from pydantic import Secret, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, TomlConfigSettingsSource

from api.security import Scope, normalise_api_keys, normalise_rate_limit
from engine.config import EngineConfig, GuardConfig, OpsConfig, PolicyConfig, SnapshotConfig, setting

CONFIG_ENV = "FRESHREC_CONFIG"
SECTIONS = ("engine", "guard", "snapshots", "policies", "ops")
SECRETS = ("snapshot_key", "admin_token", "api_keys")
README_START, README_END = "<!-- settings:start -->", "<!-- settings:end -->"


class Settings(BaseSettings):
    """What a freshrec process runs with: server and storage settings at the top level, the
    engine's parameters in the sections ``engine`` (``EngineConfig``), ``guard``
    (``GuardConfig``), ``snapshots`` (``SnapshotConfig``), ``policies`` (``PolicyConfig``:
    champion/challenger) and ``ops`` (``OpsConfig``: start-up retries, restarts,
    readiness). Build it with ``load``."""

    model_config = SettingsConfigDict(env_prefix="FRESHREC_", env_nested_delimiter="__", extra="forbid")

    host: str = setting("127.0.0.1", "", "address the HTTP server binds")
    port: int = setting(8000, "", "HTTP port", ge=0, le=65535)
    workers: int = setting(1, "processes", "uvicorn worker processes (read-only replicas only: learner = false)",
                           ge=1)
    learner: bool = setting(True, "", "run the learner in this process; false: a read-only replica that follows "
                            "the stream and the learner's snapshots")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = setting("warning", "", "log level")
    redis_url: str | None = setting(None, "", "Redis >= 6.2 URL; unset: an embedded redis-server in data_dir")
    data_dir: str = setting("freshrec-data", "", "embedded Redis data and the generated snapshot key live here")
    appendfsync: Literal["everysec", "always", "no"] = setting(
        "everysec", "", "embedded Redis AOF fsync policy (always: no second of loss on a machine crash)")
    key_prefix: str = setting("freshrec", "", "Redis key prefix, wrapped in a hash tag (one Redis Cluster slot)",
                              min_length=1)
    snapshot_key: SecretStr | None = setting(None, "", "HMAC key signing snapshots, shared by every process on "
                                             "one Redis; unset: generated once in data_dir/snapshot.key")
    admin_token: SecretStr | None = setting(None, "", "an admin key (kept from before api_keys); with neither "
                                            "set, the admin routes answer loopback clients only")
    api_keys: Secret[dict[str, list[Scope]]] | None = setting(
        None, "", "API key -> scopes (serve, catalogue, admin; admin implies all), a TOML table or JSON; a key "
        "is its digest sha256:HEX or plain (hashed at load); unset: open mode, loopback hosts only (api/security.py)")
    rate_limit: str | dict[Scope, str] | None = setting(
        None, "", "requests per API key (per client IP without keys), e.g. 100/second or 10/second;1000/minute: one "
        "budget over every scoped route, or {scope: limit}; counted in Redis, shared by replicas; unset: off")
    insecure: bool = setting(False, "", "serve a non-loopback host without api_keys (open mode) instead of refusing "
                             "to start")
    max_body_bytes: int = setting(1_000_000, "bytes", "larger request bodies get 413", ge=1)
    dedup_window_s: float = setting(86_400.0, "s", "a feedback event_key accepted within this long is not appended "
                                    "again: the answer is the original event_id (0: no dedup)", ge=0)
    log_format: Literal["text", "json"] = setting("text", "", "log lines as text, or one JSON object per line "
                                                  "(python-json-logger)")
    access_log: bool = setting(True, "", "one log line per HTTP request on logger freshrec.access: request_id, "
                               "method, route, status, latency_ms")
    final_snapshot: bool = setting(True, "", "write a snapshot at graceful shutdown")
    engine: EngineConfig = EngineConfig()
    guard: GuardConfig = GuardConfig()
    snapshots: SnapshotConfig = SnapshotConfig()
    policies: PolicyConfig = PolicyConfig()
    ops: OpsConfig = OpsConfig()

    @field_validator("api_keys", mode="before")
    @classmethod
    def _hash_api_keys(cls, value):
        """Plain keys become SHA-256 digests as the settings load (``api.security``)."""
        return normalise_api_keys(value)

    @field_validator("rate_limit", mode="before")
    @classmethod
    def _check_rate_limit(cls, value):
        return normalise_rate_limit(value)

    @model_validator(mode="after")
    def _auto_promotion_needs_logged_slates(self):
        """A challenger is evaluated on the decisions served slates log into the stream
        (``engine.log_slates``); without them ``policies.auto_promote`` could never promote."""
        if self.policies.auto_promote and self.policies.challenger is not None and not self.engine.log_slates:
            raise ValueError("policies.auto_promote needs engine.log_slates true: the challenger is evaluated on "
                             "the slates logged into the stream, and without them it is never estimated, so it "
                             "could never be promoted")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        """Precedence: flags (passed as init arguments by ``load``), environment, TOML."""
        sources = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    @classmethod
    def load(cls, flags: dict | None = None, config_file: str | os.PathLike | None = None) -> "Settings":
        """The effective settings: ``flags`` (nested dict, e.g. ``{"engine": {"n_factors":
        32}}``) over ``FRESHREC_*`` variables over the TOML ``config_file`` (default
        ``$FRESHREC_CONFIG``) over the defaults.

        Raises:
            FileNotFoundError: the TOML file does not exist.
            pydantic.ValidationError: a value is invalid or a name unknown (the message names it).
        """
        path = config_file or os.environ.get(CONFIG_ENV)
        target = cls
        if path:
            if not Path(path).is_file():
                raise FileNotFoundError(f"config file {path} not found")
            target = type(cls.__name__, (cls,), {"model_config": {**cls.model_config, "toml_file": str(path)}})
        return target(**(flags or {}))

    def redacted(self) -> dict:
        """The settings as JSON-able data, secrets shown as set / unset (``--print-config``)."""
        data = self.model_dump(mode="json")
        for name in SECRETS:
            data[name] = None if getattr(self, name) is None else "(set)"
        return data


def secret(value: SecretStr | None) -> str | None:
    """The plain value of a secret setting (None when unset)."""
    return None if value is None else value.get_secret_value()


# --------------------------------------------------------------------- the fields

def _fields():
    """(name, env var, flag or None, field info) for every setting, sections flattened."""
    prefix = Settings.model_config["env_prefix"]
    for name, info in Settings.model_fields.items():
        if name in SECTIONS:
            for sub, sub_info in info.annotation.model_fields.items():
                yield (f"{name}.{sub}", f"{prefix}{name.upper()}__{sub.upper()}", f"--{name}.{sub.replace('_', '-')}",
                       sub_info)
        else:
            flag = None if name in SECRETS else f"--{name.replace('_', '-')}"
            yield name, f"{prefix}{name.upper()}", flag, info


def _complex(annotation) -> bool:
    """Whether a setting's value is a dict, list or tuple (given as JSON on the command line)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # dict | None
        return any(_complex(a) for a in typing.get_args(annotation) if a is not type(None))
    return annotation in (dict, list, tuple) or typing.get_origin(annotation) in (dict, list, tuple)


def _type_name(annotation) -> str:
    if typing.get_origin(annotation) is Literal:
        return "|".join(str(a) for a in typing.get_args(annotation))
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return _type_name(args[0]) if len(args) == 1 else " | ".join(_type_name(a) for a in args)
    return {SecretStr: "secret"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting (``--name`` / ``--section.name``; values parsed by pydantic,
    JSON for dicts and lists; a switch alone means true, ``--insecure``), plus ``--config FILE`` and the short forms ``--guard on|off``,
    ``--no-learner``, ``--snapshot-every-events N``, ``--snapshot-every-s S``, and for the
    ``rating`` event type ``--rating-scale MIN:MAX`` and ``--positive-threshold X``."""
    parser.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                        help=f"TOML settings file (default ${CONFIG_ENV})")
    for name, env, flag, info in _fields():
        if flag is None:
            continue
        unit = (info.json_schema_extra or {}).get("unit", "")
        switch = {"nargs": "?", "const": "true"} if info.annotation is bool else {}  # --insecure = --insecure true
        parser.add_argument(flag, **switch, dest=f"{'json' if _complex(info.annotation) else 'setting'}:{name}",
                            default=argparse.SUPPRESS,
                            metavar="JSON" if _complex(info.annotation) else _type_name(info.annotation).upper(),
                            help=f"{info.description}{f' ({unit})' if unit else ''}; default {info.default!r}; "
                                 f"env {env}")
    parser.add_argument("--guard", dest="setting:guard.enabled", choices=["on", "off"], default=argparse.SUPPRESS,
                        help="short for --guard.enabled true|false")
    parser.add_argument("--no-learner", dest="setting:learner", action="store_const", const="false",
                        default=argparse.SUPPRESS, help="short for --learner false (a read-only replica)")
    parser.add_argument("--snapshot-every-events", dest="setting:snapshots.every_events", default=argparse.SUPPRESS,
                        help="short for --snapshots.every-events")
    parser.add_argument("--snapshot-every-s", dest="setting:snapshots.every_s", default=argparse.SUPPRESS,
                        help="short for --snapshots.every-s")
    parser.add_argument("--rating-scale", dest="rating:scale", default=argparse.SUPPRESS, metavar="MIN:MAX",
                        help="the scale of the 'rating' event type, e.g. 1:5 (short for --engine.events)")
    parser.add_argument("--positive-threshold", dest="rating:positive_threshold", default=argparse.SUPPRESS,
                        metavar="X", help="a 'rating' >= X is a positive (short for --engine.events)")


def flags_of(args: argparse.Namespace) -> dict:
    """The settings given on the command line, as the nested dict ``Settings.load`` takes
    (only flags actually given: absent ones leave the environment and TOML in charge)."""
    flags: dict = {}
    rating: dict = {}
    for dest, value in vars(args).items():
        kind, _, name = dest.partition(":")
        if kind == "rating":
            if name == "scale":
                low, sep, high = value.partition(":")
                if not sep:
                    raise SystemExit(f"--rating-scale {value}: expected MIN:MAX, e.g. 1:5")
                rating.update(min=low, max=high)
            else:
                rating[name] = value
            continue
        if kind not in ("setting", "json"):
            continue
        if dest == "setting:guard.enabled":
            value = {"on": "true", "off": "false"}.get(value, value)
        if kind == "json":
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"--{name.replace('_', '-')}: not JSON ({exc})") from None
        *section, field = name.split(".")
        (flags.setdefault(section[0], {}) if section else flags)[field] = value
    if rating:
        events = flags.setdefault("engine", {}).setdefault("events", {})
        events["rating"] = {**events.get("rating", {}), **rating}
    return flags


def from_args(args: argparse.Namespace) -> Settings:
    """``Settings.load`` from a parsed command line built with ``add_flags``."""
    return Settings.load(flags_of(args), getattr(args, "config", None))


SECRET_SETTINGS = ("snapshot_key", "admin_token", "api_keys")
"""Settings whose values an error message must not repeat."""


def from_args_or_exit(args: argparse.Namespace) -> Settings:
    """``from_args`` for a command: invalid settings end it with exit 2 and one line per
    problem naming the setting on stderr (not a pydantic traceback); so does a missing
    ``--config`` file.

    Raises:
        SystemExit: (2) the settings are invalid or the config file does not exist.
    """
    command = f"freshrec {getattr(args, 'command', '')}".rstrip()
    try:
        return from_args(args)
    except ValidationError as exc:
        def line(e: dict) -> str:
            if not e["loc"]:  # a rule across settings: its own words
                return f"  {e['msg'].removeprefix('Value error, ')}"
            got = "" if e["loc"][0] in SECRET_SETTINGS else f" (got {e['input']!r})"  # never echo a key
            return f"  {'.'.join(str(x) for x in e['loc'])}: {e['msg']}{got}"

        lines = [line(e) for e in exc.errors()]
        print(f"{command}: invalid settings\n" + "\n".join(lines), file=sys.stderr)
    except FileNotFoundError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
    raise SystemExit(2)


# ----------------------------------------------------------------- README table

def settings_table() -> str:
    """README's settings table (markdown), generated from ``Settings``."""
    lines = ["| setting | environment variable | default | unit | meaning |", "|---|---|---|---|---|"]
    for name, env, flag, info in _fields():
        default = info.default
        if isinstance(default, dict):
            default = json.dumps({k: v.model_dump(exclude_none=True) if hasattr(v, "model_dump") else v
                                  for k, v in default.items()}, separators=(",", ":"))
        elif isinstance(default, tuple):
            default = json.dumps(list(default))
        shown = "unset" if default is None else (f"`{default}`" if not isinstance(default, bool)
                                                else f"`{str(default).lower()}`")
        unit = (info.json_schema_extra or {}).get("unit", "") or ""
        lines.append(f"| `{name}` | `{env}` | {shown} | {unit} | {info.description} |")
    return "\n".join(lines)


def readme_table(readme: str) -> str:
    """The settings table currently in README's text (between the settings markers)."""
    start, end = readme.index(README_START) + len(README_START), readme.index(README_END)
    return readme[start:end].strip()


def main(argv: list[str] | None = None) -> int:
    """``python -m api.settings [--markdown | --update-readme [README]]``."""
    p = argparse.ArgumentParser(description="freshrec's settings table")
    p.add_argument("--update-readme", nargs="?", const="README.md", default=None, metavar="README")
    a = p.parse_args(argv)
    table = settings_table()
    if a.update_readme:
        path = Path(a.update_readme)
        text = path.read_text()
        start, end = text.index(README_START) + len(README_START), text.index(README_END)
        path.write_text(f"{text[:start]}\n{table}\n{text[end:]}")
        print(f"updated the settings table in {path}")
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
