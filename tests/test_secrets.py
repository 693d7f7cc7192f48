"""The Openapi token and the mailbox password never reach an exception, a log line, what
the command line prints, or the database."""

from __future__ import annotations

import html
import json
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from starlette.applications import Starlette

from massiva.api import (
    ApiConnectionError,
    ApiError,
    ApiSession,
    OutcomeUnknown,
    PecClient,
    PecMassivaClient,
    RetryPolicy,
    UnsendableRequest,
)
from massiva.api.errors import redact, vendor_text
from massiva.cli import main
from massiva.cli.context import Env
from massiva.config import Config, ConfigError
from massiva.simulator import Fault, Simulator, running_server
from tests.conftest import MAILBOX, PASSWORD, TOKEN, Sleeps
from tests.contract import ContractTransport
from tests.db import contents

RECIPIENT = "mario.rossi@legalmail.it"


async def test_no_secret_in_any_exception_or_log_line(
    box: PecMassivaClient,
    pec: PecClient,
    session: ApiSession,
    simulator: Simulator,
    contract: ContractTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    contract.undocumented.update({500, 503})
    wrong = PecMassivaClient(session, MAILBOX, PASSWORD + "-wrong")
    # A vendor that echoes what it was sent in its error message.
    simulator.add_fault(
        Fault(
            path="/inbox",
            method="GET",
            kind="status",
            status=503,
            times=9,
            message=f"bad credentials {MAILBOX}:{PASSWORD} with Bearer {TOKEN}",
        )
    )
    simulator.add_fault(
        Fault(
            path="/send",
            method="POST",
            kind="status",
            status=500,
            times=1,
            message=f"MySQL Error near '{PASSWORD}'",
        )
    )
    failing: list[Callable[[], Awaitable[object]]] = [
        lambda: box.inbox(),  # 5xx retried, then given up
        lambda: box.send(RECIPIENT, "Oggetto", "Corpo"),  # outcome unknown
        lambda: box.send("not-an-address", "Oggetto", "Corpo"),  # 400
        lambda: wrong.quota(),  # 401
        lambda: wrong.send(RECIPIENT, "Oggetto", "Corpo"),  # 401 on the body credentials
        lambda: pec.get_mailbox("xyz"),  # 400 with a vendor code
    ]
    seen: list[str] = []
    for call in failing:
        with pytest.raises(ApiError) as raised:
            await call()
        seen += [str(raised.value), repr(raised.value), raised.value.message]
        seen += traceback.format_exception(raised.value)

    seen += [record.getMessage() for record in caplog.records]
    assert len(caplog.records) > len(failing)  # the calls were logged...
    for text in seen:  # ...and nothing anywhere holds a secret
        assert TOKEN not in text
        assert PASSWORD not in text
    assert any("***" in text for text in seen)  # the echoed secrets were redacted


# -- a secret that HTTP cannot carry ------------------------------------------------------

CR_PASSWORD = PASSWORD + "\r"  # read from a .env file with Windows line endings
CR_TOKEN = TOKEN + "\r"


def spellings(secret: str) -> list[str]:
    """The secret as is, and as h11 and repr() quote it (``pw\\r``)."""
    return [secret, secret.strip(), repr(secret)[1:-1], repr(secret.encode())[2:-1]]


@pytest.fixture
def server(app: Starlette) -> Iterator[str]:
    """The simulator on a real loopback socket (h11 checks the headers there)."""
    with running_server(app) as base_url:
        yield base_url


async def test_a_secret_with_a_control_character_is_never_sent_and_never_shown(
    server: str,
    simulator: Simulator,
    sleeps: Sleeps,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx, httpcore and uvicorn included
    retry = RetryPolicy(attempts=3)
    raised: list[ApiError] = []
    async with (
        ApiSession(server, TOKEN, retry=retry, sleep=sleeps) as session,
        ApiSession(server, CR_TOKEN, retry=retry, sleep=sleeps) as bad_token,
    ):
        box = PecMassivaClient(session, MAILBOX, CR_PASSWORD)
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: box.quota(),  # a read: not retried either
            lambda: box.inbox(),
            lambda: box.delete_send("2024011510000512"),  # a change: not "unknown"
            lambda: PecClient(bad_token).list_mailboxes(),
            lambda: PecClient(bad_token).renew_mailbox("6040e4613a716838dc4eee0e"),
        ]
        for call in calls:
            with pytest.raises(UnsendableRequest) as caught:
                await call()
            raised.append(caught.value)

    assert simulator.requests == []  # nothing reached the vendor...
    assert sleeps.waits == []  # ...nor was tried again
    for error in raised:
        assert isinstance(error, ApiConnectionError)
        assert not isinstance(error, OutcomeUnknown)
        assert error.status is None
        assert "invalid header value" in error.message and "nothing was sent" in error.message
    seen = [text for error in raised for text in texts_of(error)]
    seen += [caplog.text, *(record.getMessage() for record in caplog.records)]
    for text in seen:
        for secret in (*spellings(CR_PASSWORD), *spellings(CR_TOKEN)):
            assert secret not in text


def texts_of(error: BaseException) -> list[str]:
    """Everything a user or a log may see of ``error``."""
    message = error.message if isinstance(error, ApiError) else ""
    return [str(error), repr(error), message, *traceback.format_exception(error)]


@pytest.mark.parametrize(
    ("value", "advice"),
    [
        (PASSWORD + "\r", "Windows line endings"),
        (PASSWORD + "\r\n", "Windows line endings"),
        ("pw\tX7sEcReT", "without the line break, tab or other control character"),
        (PASSWORD + "\x00", "without the line break, tab or other control character"),
    ],
    ids=["cr", "crlf", "tab", "nul"],
)
def test_the_configuration_refuses_a_secret_with_a_control_character(
    value: str, advice: str
) -> None:
    config = Config()
    with pytest.raises(ConfigError) as token:
        config.token({"OPENAPI_TOKEN": value})
    with pytest.raises(ConfigError) as password:
        config.password(MAILBOX, {"MASSIVA_PASSWORD_UFFICIO": value})

    for raised, variable in ((token, "OPENAPI_TOKEN"), (password, "MASSIVA_PASSWORD_UFFICIO")):
        message = str(raised.value)
        assert f"The environment variable {variable} holds a control character" in message
        assert advice in message
        assert value.strip() not in message and "X7sEcReT" not in message


def test_the_configuration_refuses_a_password_with_surrounding_spaces() -> None:
    with pytest.raises(ConfigError, match="MASSIVA_PASSWORD_UFFICIO begins or ends with a space"):
        Config().password(MAILBOX, {"MASSIVA_PASSWORD_UFFICIO": PASSWORD + " "})
    # Inner spaces are a password's own business; a token never has spaces: trimmed.
    assert Config().password(MAILBOX, {"MASSIVA_PASSWORD_UFFICIO": "a b"}) == "a b"
    assert Config().token({"OPENAPI_TOKEN": f" {TOKEN} "}) == TOKEN


# -- the command line ------------------------------------------------------------------

APPLICANT = """
casella_pec = "studio.bianchi@pecmassiva.com"
tipo_cliente = "PV"
nome_richiedente = "Giulia"
cognome_richiedente = "Bianchi"
email = "giulia@studiobianchi.it"
telefono = "0548 798569"
codice_fiscale_richiedente = "BNCGLI80A41H501C"
data_nascita_richiedente = "01/01/1980"
sesso_richiedente = "F"
nazione_nascita_richiedente = "IT"
provincia_nascita_richiedente = "RM"
indirizzo_titolare = "via Verdi 20"
comune_titolare = "Roma"
cap_titolare = "00042"
nazione_titolare = "IT"
provincia_titolare = "RM"
"""


def test_no_secret_in_what_the_command_line_prints_or_stores(
    server: str, simulator: Simulator, tmp_path: Path, database: Path | str
) -> None:
    config = tmp_path / "massiva.toml"
    config.write_text(f'[mailboxes."{MAILBOX}"]\npassword_env = "BOX_PW"\n', encoding="utf-8")
    applicant = tmp_path / "richiedente.toml"
    applicant.write_text(APPLICANT, encoding="utf-8")
    transport = ContractTransport(httpx.AsyncHTTPTransport())

    options = ["--config", str(config), "--db", str(database)]
    options += ["--api-url", server, "--sending-url", server]

    def invoke(*args: str, token: str = TOKEN, password: str = PASSWORD) -> Result:
        return CliRunner().invoke(
            main,
            [*options, *args],
            obj=Env(transport=transport),
            env={"OPENAPI_TOKEN": token, "BOX_PW": password},
            catch_exceptions=False,
        )

    results = {
        "register": invoke("mailbox", "register", "--applicant", str(applicant), "--json"),
        "list": invoke("mailbox", "list"),
        "list --local": invoke("mailbox", "list", "--local", "--json"),
        "quota": invoke("quota"),
        "quota --json": invoke("quota", "--json"),
    }
    # A vendor that echoes the credentials in an error.
    echo = f"bad credentials {MAILBOX}:{PASSWORD} with Bearer {TOKEN}"
    simulator.add_fault(Fault(path="/quota/*", kind="status", status=400, times=2, message=echo))
    results["echo"] = invoke("quota")
    results["echo --json"] = invoke("quota", "--json")
    # Secrets read from a file with Windows line endings.
    results["cr password"] = invoke("quota", password=CR_PASSWORD)
    results["cr password --json"] = invoke("quota", "--json", password=CR_PASSWORD)
    results["cr token"] = invoke("mailbox", "list", token=CR_TOKEN)

    assert [results[k].exit_code for k in ("register", "list", "list --local", "quota")] == [0] * 4
    assert json.loads(results["quota --json"].stdout)["mailbox"] == MAILBOX
    assert results["echo"].exit_code == 1 and "***" in results["echo"].stderr
    vendor = json.loads(results["echo --json"].stdout)["error"]["vendor_message"]
    assert vendor == f"bad credentials {MAILBOX}:*** with Bearer ***"
    for name, variable in (("cr password", "BOX_PW"), ("cr token", "OPENAPI_TOKEN")):
        assert results[name].exit_code == 3
        assert f"The environment variable {variable} holds a control character" in (
            results[name].stderr
        )
        assert "Windows line endings" in results[name].stderr
    refused = json.loads(results["cr password --json"].stdout)["error"]
    assert refused["exit_code"] == 3 and "BOX_PW" in refused["message"]
    assert [r.path for r in simulator.requests].count("/quota/INBOX") == 4  # none with \r

    dump = contents(database)
    assert "studio.bianchi@pecmassiva.com" in dump  # the database was written...
    for name, result in results.items():
        for text in (result.stdout, result.stderr):
            for secret in (*spellings(CR_PASSWORD), *spellings(CR_TOKEN)):
                assert secret not in text, name
    for secret in (*spellings(CR_PASSWORD), *spellings(CR_TOKEN)):
        assert secret not in dump  # ...and holds no secret


# -- what the vendor echoes: every spelling redacted, before the cut ----------------------

HTML_PASSWORD = "pw<Xy7'sEcReT&\"41c0de"


@pytest.mark.parametrize(
    "spelling",
    [
        html.escape(HTML_PASSWORD),  # &lt; &#x27; &amp; &quot;
        html.escape(HTML_PASSWORD, quote=False),
        html.escape(HTML_PASSWORD).replace("&#x27;", "&#39;").replace("&quot;", "&#34;"),
        html.escape(HTML_PASSWORD).replace("&#x27;", "&#039;"),  # PHP's htmlspecialchars
        html.escape(HTML_PASSWORD).replace("&#x27;", "&apos;"),
    ],
)
def test_an_html_escaped_echo_is_redacted(spelling: str) -> None:
    assert redact(f"<p>wrong password {spelling}</p>", [HTML_PASSWORD]) == (
        "<p>wrong password ***</p>"
    )


def test_a_vendor_text_is_redacted_before_it_is_cut_and_made_one_line() -> None:
    text = "x" * 490 + PASSWORD + "\r\n" + html.escape(HTML_PASSWORD) + " " + "y" * 50

    kept = vendor_text(text, [PASSWORD, HTML_PASSWORD])

    assert kept == "x" * 490 + "***  **..."  # 500 characters, the last three the cut
    assert len(kept) == 500
    for end in range(6, len(PASSWORD) + 1):
        assert PASSWORD[:end] not in kept
