"""What every command shares: the configuration, the clients it builds, and how failures
become messages and exit codes.

Exit codes (the same for every command):

====  =====================================================================
0     done
1     the vendor refused, or the thing asked for is not so (taken, failed)
2     bad usage or bad input (a command-line mistake, an invalid file)
3     configuration missing or wrong (no token, no password, bad massiva.toml)
4     the vendor could not be reached, or the outcome of a change is unknown
      (``send``: some recipients' posts may or may not have left)
5     a wait ran out of time
6     ``send``: the campaign is paused or cancelled
7     ``send``: an allowance is spent (it says when it renews)
130   stopped by Ctrl+C (SIGINT) after a clean stop; 143 by SIGTERM (128 + the signal)
====  =====================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, ParamSpec

import click
import httpx

from massiva.api import (
    ApiConnectionError,
    ApiError,
    ApiSession,
    OutcomeUnknown,
    PecClient,
    PecMassivaClient,
    RateLimited,
    ServerError,
    UnsendableRequest,
)
from massiva.campaign import CampaignError, RenderError
from massiva.cli.text import json_text, printable
from massiva.config import Config, ConfigError, load_config
from massiva.loaded import CampaignCancelled, CampaignChanged, UnknownCampaign
from massiva.loading import LoadError
from massiva.provisioning.applicant import ApplicantError
from massiva.provisioning.documents import DocumentError
from massiva.provisioning.service import Provisioner, WaitFailed, WaitTimedOut
from massiva.store import Store, Unavailable
from massiva.workers import WorkerFailed

EXIT_REFUSED, EXIT_INPUT, EXIT_CONFIG, EXIT_UNREACHABLE, EXIT_TIMEOUT = 1, 2, 3, 4, 5
EXIT_STOPPED, EXIT_ALLOWANCE = 6, 7
EXIT_SIGNAL = 128  # + the signal's number: 130 for SIGINT (Ctrl+C), 143 for SIGTERM

P = ParamSpec("P")


@dataclass
class Env:
    """The command line's state, on ``click.Context.obj``.

    ``transport`` is the network seam: tests put the in-process simulator there.
    """

    config_path: Path | None = None
    sandbox: bool = False
    api_url: str | None = None
    sending_url: str | None = None
    database: Path | str | None = None
    transport: httpx.AsyncBaseTransport | None = None
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        """The configuration: the file (if any) with the command line on top."""
        if self._config is None:
            self._config = load_config(self.config_path).with_overrides(
                sandbox=self.sandbox,
                api_url=self.api_url,
                sending_url=self.sending_url,
                database=self.database,
            )
        return self._config

    @asynccontextmanager
    async def store(self) -> AsyncIterator[Store]:
        """The massiva database."""
        config = self.config
        async with await Store.open(
            config.store_target(), archive_dir=config.archive_dir()
        ) as store:
            yield store

    @asynccontextmanager
    async def provisioner(self) -> AsyncIterator[Provisioner]:
        """Provisioning on the PEC API, remembered in the database."""
        config = self.config
        token = config.token()
        async with (
            ApiSession(config.pec_url, token, transport=self.transport) as session,
            self.store() as store,
        ):
            yield Provisioner(PecClient(session), store)

    @asynccontextmanager
    async def mailbox_client(self, address: str) -> AsyncIterator[PecMassivaClient]:
        """The PEC Massiva client of one sending mailbox."""
        async with self.mailbox_clients([address]) as (client,):
            yield client

    @asynccontextmanager
    async def mailbox_clients(
        self, addresses: Sequence[str]
    ) -> AsyncIterator[list[PecMassivaClient]]:
        """The PEC Massiva clients of a pool's mailboxes, each over its own HTTP session
        (a connection pool a mailbox: one shared by hundreds of paced mailboxes would make
        their posts queue, and httpcore's bookkeeping grows with the square of a pool).
        Every password is read first: a missing one is a ConfigError before anything
        starts."""
        config = self.config
        token = config.token()
        passwords = [config.password(address) for address in addresses]
        async with contextlib.AsyncExitStack() as stack:
            clients = []
            for address, password in zip(addresses, passwords, strict=True):
                session = await stack.enter_async_context(self.sending_session(token))
                clients.append(PecMassivaClient(session, config.mailbox(address).address, password))
            yield clients

    def sending_session(self, token: str) -> ApiSession:
        """A new session on the PEC Massiva (sending) API."""
        return ApiSession(self.config.sending_url, token, transport=self.transport)


pass_env = click.make_pass_decorator(Env, ensure=True)


def fail(message: str, code: int, *, as_json: bool = False, **details: Any) -> NoReturn:
    """Print ``message`` (or a JSON error object) and exit with ``code``."""
    if as_json:
        click.echo(json_text({"error": {"message": message, "exit_code": code, **details}}))
    else:
        click.echo(f"Error: {printable(message)}", err=True)
    sys.exit(code)


def _api_failure(exc: ApiError) -> int:
    if isinstance(exc, UnsendableRequest):  # a bad URL or secret in the configuration
        return EXIT_CONFIG
    if isinstance(exc, ApiConnectionError | OutcomeUnknown | ServerError | RateLimited):
        return EXIT_UNREACHABLE
    if isinstance(exc, ApiError) and exc.status in (401, 403):
        return EXIT_CONFIG
    return EXIT_REFUSED


def run(command: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async command, turning the library's exceptions into messages and exit codes.

    A command's ``as_json`` flag makes its errors JSON too.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        as_json = bool(kwargs.get("as_json", False))
        try:
            asyncio.run(command(*args, **kwargs))
        except ConfigError as exc:
            fail(str(exc), EXIT_CONFIG, as_json=as_json)
        except Unavailable as exc:
            fail(str(exc), EXIT_UNREACHABLE, as_json=as_json)
        except (ApplicantError, DocumentError, CampaignError) as exc:
            problems = [str(e) for e in getattr(exc, "errors", getattr(exc, "problems", []))]
            fail(
                "nothing was sent; fix these first:\n  - " + "\n  - ".join(problems),
                EXIT_INPUT,
                as_json=as_json,
                problems=problems,
            )
        except (LoadError, RenderError, CampaignChanged) as exc:
            fail(f"nothing was sent: {exc}", EXIT_INPUT, as_json=as_json)
        except (UnknownCampaign, CampaignCancelled) as exc:
            fail(str(exc), EXIT_REFUSED, as_json=as_json)
        except WorkerFailed as exc:  # it printed its own error; running again goes on
            fail(f"nothing was sent: {exc}", EXIT_REFUSED, as_json=as_json)
        except WaitFailed as exc:
            fail(str(exc), EXIT_REFUSED, as_json=as_json, state=exc.mailbox.state)
        except WaitTimedOut as exc:
            fail(str(exc), EXIT_TIMEOUT, as_json=as_json)
        except ApiError as exc:
            hint = ""
            if exc.status == 401:
                hint = (
                    " (check the Openapi token in the environment, its scopes, and the"
                    " mailbox's password)"
                )
            fail(
                f"{exc}{hint}",
                _api_failure(exc),
                as_json=as_json,
                status=exc.status,
                vendor_code=exc.code,
                vendor_message=exc.message,
            )

    return wrapper
