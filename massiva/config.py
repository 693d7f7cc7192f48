"""Settings from ``massiva.toml`` and the environment.

Secrets never live in the file: the Openapi token is read from the environment variable
named by ``token_env`` (default ``OPENAPI_TOKEN``), and each mailbox's password from the
variable its ``password_env`` names. A file that holds a ``token`` or ``password`` key is
refused, so that a secret is not committed by accident.

A minimal ``massiva.toml``::

    [vendor]
    sandbox = true                      # the vendor's test hosts

    [mailboxes."ufficio@pecmassiva.com"]
    password_env = "MASSIVA_PASSWORD"   # export MASSIVA_PASSWORD=...

    [campaigns]
    templates = "templates"             # shared layouts campaigns may extend

    [pools]                             # optional: named pools, campaign.toml's pool = "..."
    avvisi = ["a@pecmassiva.com", "b@pecmassiva.com"]

    [service]                           # optional: massiva run (docs/deploy.md)
    reconcile_every = 900               # seconds between reconciles of each mailbox
    status = "127.0.0.1:9464"           # /healthz and /metrics, loopback only; "" for none
    webhook_url = "https://hooks.example.it/massiva"   # optional notifications
    webhook_secret_env = "MASSIVA_WEBHOOK_SECRET"      # the HMAC-SHA256 key's variable

Without ``templates``, the shared layouts are ``templates/`` beside the file (or in the
working folder when there is no file) if it exists, else the ones massiva ships.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from massiva.api.hosts import PRODUCTION, SANDBOX
from massiva.archive import Archive
from massiva.dburl import is_url, masked
from massiva.receipts import certifiers
from massiva.resources import TEMPLATES

CONFIG_NAME = "massiva.toml"
DEFAULT_TOKEN_ENV = "OPENAPI_TOKEN"  # noqa: S105 - the name of a variable, not a token
DATABASE_URL_ENV = "MASSIVA_DATABASE_URL"
SIMULATOR_HINT = (
    "To try everything on the built-in simulator instead, run `massiva simulator --port 8080`"
    " in another terminal, then add `--api-url http://127.0.0.1:8080 --sending-url"
    " http://127.0.0.1:8080` to your commands with OPENAPI_TOKEN=any (the simulator's"
    " mailbox demo@pecmassiva.com has the password `demo`)."
)


class ConfigError(ValueError):
    """The configuration is missing or wrong; the message says how to fix it."""


@dataclass(frozen=True)
class MailboxConfig:
    """A sending mailbox: where its password is, and its plan's allowances and pace."""

    address: str
    password_env: str
    daily_limit: int = 3500
    monthly_limit: int = 30000
    send_rate: float = 1.0
    #: Who writes this mailbox's receipts; empty: its provider's posta-certificata@.
    certifying_senders: tuple[str, ...] = ()
    #: Free the mailbox of a sending's receipts (``DELETE /send/{code}``) once every one
    #: of them is kept in the database, its hash checked (massiva/purge.py). Off by
    #: default: the database then holds the only copy, and must be backed up.
    purge_archived: bool = False

    @property
    def trusted(self) -> frozenset[str]:
        """The senders whose receipts count for this mailbox."""
        return certifiers(self.address, self.certifying_senders)


@dataclass(frozen=True)
class ServiceConfig:
    """How ``massiva run`` runs: how often it reads receipts, where it answers health
    checks and metrics, whom it notifies."""

    reconcile_every: float = 900.0  # seconds between reconciles of a mailbox
    status_host: str = "127.0.0.1"
    status_port: int | None = 9464  # None: no status server
    webhook_url: str | None = None
    webhook_secret_env: str = "MASSIVA_WEBHOOK_SECRET"  # noqa: S105 - a variable's name

    def webhook_secret(self, environ: Mapping[str, str] = os.environ) -> str | None:
        """The webhook's HMAC key, from the environment; None when unset (unsigned)."""
        secret = environ.get(self.webhook_secret_env, "")
        check_secret(self.webhook_secret_env, secret)
        return secret or None


@dataclass(frozen=True)
class Config:
    """Everything massiva needs to know, secrets excepted (they are read on demand)."""

    pec_url: str = PRODUCTION.pec
    sending_url: str = PRODUCTION.sending
    token_env: str = DEFAULT_TOKEN_ENV
    database: Path = Path("massiva.db")  # SQLite's file
    database_url: str | None = None  # [database] url: PostgreSQL instead
    database_chosen: bool = False  # by the command line (--db): the environment's yields
    archive: Path | None = None  # [database] archive; default: beside the SQLite file
    mailboxes: Mapping[str, MailboxConfig] = field(default_factory=dict)
    own_domains: tuple[str, ...] = ()
    templates: Path | None = None  # shared Jinja layouts campaigns may extend
    pools: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    sandbox: bool = False
    source: Path | None = None

    def token(self, environ: Mapping[str, str] = os.environ) -> str:
        """The Openapi token, from the environment; ConfigError with a how-to if unset,
        or if it holds a control character (see :func:`check_secret`)."""
        raw = environ.get(self.token_env, "")
        check_secret(self.token_env, raw)
        token = raw.strip()
        if not token:
            raise ConfigError(
                f"No Openapi token: set the environment variable {self.token_env} to a token"
                " with the PEC and PEC Massiva scopes (get one at console.openapi.com)."
                f" {SIMULATOR_HINT}"
            )
        return token

    def store_target(self, environ: Mapping[str, str] = os.environ) -> Path | str:
        """The database to open: ``--db``, else the URL in ``MASSIVA_DATABASE_URL``,
        else ``[database] url``, else the SQLite file (``[database] path``)."""
        if not self.database_chosen:
            url = environ.get(DATABASE_URL_ENV, "").strip()
            if url:
                if not is_url(url):
                    raise ConfigError(
                        f"{DATABASE_URL_ENV} must be a postgresql:// URL, not {masked(url)!r}"
                        f" (unset it to use the SQLite file {self.database})"
                    )
                return url
        return self.database_url or self.database

    def archive_dir(self) -> Path:
        """Where the bodies and attachments as sent are kept: ``[database] archive``, else
        beside the SQLite file (``massiva.db.archive``). Hosts sharing a PostgreSQL
        database must share this folder too (evidence bundles read it)."""
        return self.archive or Archive.beside(self.database).root

    def mailbox(self, address: str) -> MailboxConfig:
        """The configuration of a sending mailbox (defaults when the file names none)."""
        address = address.lower()
        found = self.mailboxes.get(address)
        if found is not None:
            return found
        return MailboxConfig(address=address, password_env=password_env_name(address))

    def default_mailbox(self) -> str:
        """The sending mailbox to use when none is named: the only one configured."""
        if len(self.mailboxes) == 1:
            return next(iter(self.mailboxes))
        configured = ", ".join(sorted(self.mailboxes)) or "none"
        raise ConfigError(
            f"name the mailbox with --mailbox ADDRESS (configured in {CONFIG_NAME}: {configured})"
        )

    def password(self, address: str, environ: Mapping[str, str] = os.environ) -> str:
        """A mailbox's password, from the environment variable its configuration names."""
        box = self.mailbox(address)
        password = environ.get(box.password_env, "")
        check_secret(box.password_env, password, header=True)
        if not password:
            where = f" ({self.source})" if self.source else ""
            raise ConfigError(
                f"No password for {box.address}: set the environment variable"
                f" {box.password_env}, or name another one with password_env under"
                f' [mailboxes."{box.address}"] in {CONFIG_NAME}{where}.'
            )
        return password

    def with_overrides(
        self,
        *,
        sandbox: bool = False,
        api_url: str | None = None,
        sending_url: str | None = None,
        database: Path | str | None = None,
    ) -> Config:
        """This configuration with the command line's choices on top."""
        config = self
        if sandbox:
            config = replace(config, sandbox=True, pec_url=SANDBOX.pec, sending_url=SANDBOX.sending)
        if api_url:
            config = replace(config, pec_url=api_url.rstrip("/"))
        if sending_url:
            config = replace(config, sending_url=sending_url.rstrip("/"))
        if is_url(database):
            config = replace(config, database_url=str(database), database_chosen=True)
        elif database:
            config = replace(
                config, database=Path(database), database_url=None, database_chosen=True
            )
        return config


def check_secret(variable: str, value: str, *, header: bool = False) -> None:
    """Refuse a secret that HTTP headers cannot carry, naming ``variable``, never the value.

    A control character (a carriage return from a file with Windows line endings, a tab,
    a newline) is always refused; with ``header``, so is a space at either end, which no
    header value can keep. Nothing is stripped silently: the secret would be another one.
    """
    if any(unicodedata.category(c) == "Cc" for c in value):
        if "\r" in value:
            how = (
                "a carriage return, so the file you exported it from has Windows line"
                " endings; convert it (dos2unix FILE, or sed -i 's/\\r$//' FILE) and"
                " export the variable again"
            )
        else:
            how = "export it again without the line break, tab or other control character"
        raise ConfigError(
            f"The environment variable {variable} holds a control character, which no"
            f" token or password can contain: {how}."
        )
    if header and value != value.strip():
        raise ConfigError(
            f"The environment variable {variable} begins or ends with a space, which an"
            " HTTP header cannot carry: export it again without the surrounding spaces"
            " (if the password really has them, change the mailbox's password)."
        )


def password_env_name(address: str) -> str:
    """The default variable for a mailbox's password: ``MASSIVA_PASSWORD_`` + its local part.

    ``ufficio.legale@pecmassiva.com`` reads ``MASSIVA_PASSWORD_UFFICIO_LEGALE``.
    """
    local = address.split("@", 1)[0]
    return "MASSIVA_PASSWORD_" + "".join(c if c.isalnum() else "_" for c in local).upper()


def load_config(path: Path | None = None, *, cwd: Path | None = None) -> Config:
    """Read ``path``, or ``massiva.toml`` in ``cwd`` if there is one, else the defaults."""
    if path is None:
        here = cwd or Path.cwd()
        candidate = here / CONFIG_NAME
        if not candidate.exists():
            return Config(templates=_default_templates(here))
        path = candidate
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return _parse(raw, path)


_SECTIONS = ("vendor", "database", "mailboxes", "domains", "campaigns", "pools", "service")


def _parse(raw: Mapping[str, Any], path: Path) -> Config:
    errors: list[str] = []
    _refuse_secrets(raw, (), errors)
    for key in raw:
        if key not in _SECTIONS:
            errors.append(f"unknown section [{key}] (known: {', '.join(_SECTIONS)})")

    vendor = _table(raw, "vendor", errors)
    sandbox = _typed(vendor, "sandbox", bool, False, "vendor", errors)
    hosts = SANDBOX if sandbox else PRODUCTION
    config = Config(
        pec_url=_typed(vendor, "pec_url", str, hosts.pec, "vendor", errors).rstrip("/"),
        sending_url=_typed(vendor, "sending_url", str, hosts.sending, "vendor", errors).rstrip("/"),
        token_env=_typed(vendor, "token_env", str, DEFAULT_TOKEN_ENV, "vendor", errors),
        sandbox=sandbox,
        **_database(_table(raw, "database", errors), path, errors),
        mailboxes=_mailboxes(_table(raw, "mailboxes", errors), errors),
        own_domains=_own_domains(_table(raw, "domains", errors), errors),
        templates=_templates(_table(raw, "campaigns", errors), path, errors),
        pools=_pools(_table(raw, "pools", errors), errors),
        service=_service(_table(raw, "service", errors), errors),
        source=path,
    )
    if errors:
        raise ConfigError(f"{path}:\n" + "\n".join(f"  - {e}" for e in errors))
    return config


def _refuse_secrets(raw: Mapping[str, Any], where: tuple[str, ...], errors: list[str]) -> None:
    for key, value in raw.items():
        if key in {"token", "password"} and where == ("database",):
            errors.append(
                f"database.{key}: secrets are never read from the file; put the"
                " PostgreSQL password in PGPASSWORD, ~/.pgpass or a service file, which"
                " PostgreSQL's client reads"
            )
        elif key in {"token", "password"}:
            name = ".".join((*where, key))
            errors.append(
                f"{name}: secrets are never read from the file; put it in an environment"
                " variable and name that variable with token_env / password_env"
            )
        elif isinstance(value, Mapping):
            _refuse_secrets(value, (*where, key), errors)


def _table(raw: Mapping[str, Any], name: str, errors: list[str]) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, Mapping):
        errors.append(f"[{name}] must be a table")
        return {}
    return value


def _typed(
    table: Mapping[str, Any], key: str, kind: type[Any], default: Any, where: str, errors: list[str]
) -> Any:
    value = table.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        errors.append(f"{where}.{key} must be a {kind.__name__}, not {value!r}")
        return default
    return value


def _database(table: Mapping[str, Any], path: Path, errors: list[str]) -> dict[str, Any]:
    for key in table:
        if key not in ("path", "url", "archive", "password", "token"):  # secrets: said
            errors.append(f"database.{key}: unknown (known: path, url, archive)")

    def relative(value: str) -> Path:
        # A relative path is relative to the configuration file, not to the cwd.
        found = Path(value).expanduser()
        return found if found.is_absolute() else path.parent / found

    found: dict[str, Any] = {
        "database": relative(_typed(table, "path", str, "massiva.db", "database", errors))
    }
    if "archive" in table:
        found["archive"] = relative(_typed(table, "archive", str, "", "database", errors))
    if "url" in table:
        url = _typed(table, "url", str, "", "database", errors)
        if "path" in table:
            errors.append("[database]: give path (SQLite) or url (PostgreSQL), not both")
        elif not is_url(url):
            errors.append(f"database.url must be a postgresql:// URL, not {masked(url)!r}")
        elif masked(url) != url:
            errors.append(
                "database.url: secrets are never read from the file; leave the password"
                " out of the URL and put it in PGPASSWORD, ~/.pgpass or a service file"
                " (postgresql:///?service=NAME), which PostgreSQL's client reads"
            )
        else:
            found["database_url"] = url
    return found


def _mailboxes(table: Mapping[str, Any], errors: list[str]) -> dict[str, MailboxConfig]:
    boxes: dict[str, MailboxConfig] = {}
    for address, entry in table.items():
        where = f'mailboxes."{address}"'
        if "@" not in address:
            errors.append(f"{where}: the key must be the mailbox's address")
            continue
        if not isinstance(entry, Mapping):
            errors.append(f"{where} must be a table")
            continue
        known = {
            "password_env",
            "daily_limit",
            "monthly_limit",
            "send_rate",
            "certifying_senders",
            "purge_archived",
        }
        unknown = set(entry) - known
        errors += [f"{where}.{key}: unknown setting" for key in sorted(unknown)]
        box = MailboxConfig(
            address=address.lower(),
            password_env=_typed(
                entry, "password_env", str, password_env_name(address), where, errors
            ),
            daily_limit=_typed(entry, "daily_limit", int, 3500, where, errors),
            monthly_limit=_typed(entry, "monthly_limit", int, 30000, where, errors),
            send_rate=_typed(entry, "send_rate", float, 1.0, where, errors),
            certifying_senders=tuple(_typed(entry, "certifying_senders", list, [], where, errors)),
            purge_archived=_typed(entry, "purge_archived", bool, False, where, errors),
        )
        if not all(isinstance(s, str) and "@" in s for s in box.certifying_senders):
            errors.append(f"{where}.certifying_senders must be a list of addresses")
        if box.daily_limit < 1 or box.monthly_limit < 1 or box.send_rate <= 0:
            errors.append(f"{where}: allowances and send_rate must be positive")
        boxes[box.address] = box
    return boxes


def _pools(table: Mapping[str, Any], errors: list[str]) -> dict[str, tuple[str, ...]]:
    pools: dict[str, tuple[str, ...]] = {}
    for name, value in table.items():
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(a, str) and "@" in a for a in value)
        ):
            errors.append(
                f'pools.{name} must be a list of mailbox addresses, e.g. {name} = ["a@pecmassiva'
                '.com", "b@pecmassiva.com"]'
            )
            continue
        boxes = tuple(dict.fromkeys(a.strip().lower() for a in value))
        if len(boxes) < len(value):
            errors.append(f"pools.{name} lists a mailbox twice; list each once")
        pools[name] = boxes
    return pools


def _service(table: Mapping[str, Any], errors: list[str]) -> ServiceConfig:
    unknown = set(table) - {"reconcile_every", "status", "webhook_url", "webhook_secret_env"}
    errors += [f"service.{key}: unknown setting" for key in sorted(unknown)]
    every = _typed(table, "reconcile_every", float, 900.0, "service", errors)
    if every < 10:
        errors.append("service.reconcile_every must be at least 10 (seconds)")
    status = _typed(table, "status", str, "127.0.0.1:9464", "service", errors)
    host, port = "127.0.0.1", None
    if status:
        host, _, number = status.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")  # "[::1]:9464"
        if not _loopback(host) or not number.isdigit() or not 0 <= int(number) < 65536:
            errors.append(
                f'service.status must be "HOST:PORT" with a loopback address (the status'
                f' endpoints are for this machine only), e.g. "127.0.0.1:9464" or'
                f' "[::1]:9464", or "" for none, not {status!r}'
            )
        else:
            port = int(number)
    url = table.get("webhook_url")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        errors.append(f"service.webhook_url must be an http:// or https:// address, not {url!r}")
        url = None
    return ServiceConfig(
        reconcile_every=every,
        status_host=host,
        status_port=port,
        webhook_url=url or None,
        webhook_secret_env=_typed(
            table, "webhook_secret_env", str, "MASSIVA_WEBHOOK_SECRET", "service", errors
        ),
    )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default_templates(folder: Path) -> Path | None:
    """``folder/templates`` if it exists, else the shared templates massiva ships: a
    campaign copied from the example finds its layout without any configuration."""
    for templates in (folder / "templates", TEMPLATES):
        if templates.is_dir():
            return templates
    return None


def _templates(table: Mapping[str, Any], path: Path, errors: list[str]) -> Path | None:
    value = table.get("templates")
    if value is None:
        return _default_templates(path.parent)
    if not isinstance(value, str):
        errors.append(f"campaigns.templates must be a folder name, not {value!r}")
        return None
    folder = path.parent / Path(value).expanduser()
    if not folder.is_dir():
        errors.append(
            f"campaigns.templates: {folder} is not a folder; create it, or run"
            " `massiva init` in a new folder for a copy of the shipped templates"
        )
        return None
    return folder


def _own_domains(table: Mapping[str, Any], errors: list[str]) -> tuple[str, ...]:
    value = table.get("own", [])
    if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
        errors.append('domains.own must be a list of domain names, e.g. ["pec.studio.it"]')
        return ()
    return tuple(d.lower() for d in value)
