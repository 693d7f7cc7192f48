"""Provisioning from the command line, against the simulator, with a real SQLite file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from starlette.applications import Starlette

from massiva.api import ApiSession, PecClient
from massiva.cli import main
from massiva.cli.context import Env
from massiva.provisioning.applicant import load_applicant, validate_applicant
from massiva.provisioning.service import NotKnown, Provisioner, WaitTimedOut
from massiva.simulator import SimClock, Simulator, SimulatorSettings, create_app
from massiva.store import MailboxRow, Store
from tests.conftest import START, TOKEN
from tests.contract import ContractTransport
from tests.pdfs import pdf

Invoke = Callable[..., Result]

APPLICANT = """
casella_pec = "studio.bianchi@pecmassiva.com"
tipo_cliente = "PS"
sottotipo_cliente = "PA"
nome_richiedente = "Giulia"
cognome_richiedente = "Bianchi"
email = "giulia@studiobianchi.it"
telefono = "0548 798569"
codice_fiscale_richiedente = "BNCGLI80A41H501C"
data_nascita_richiedente = "01/01/1980"
sesso_richiedente = "F"
nazione_nascita_richiedente = "it"
provincia_nascita_richiedente = "RM"
indirizzo_titolare = "via Verdi 20"
comune_titolare = "Roma"
cap_titolare = "00042"
nazione_titolare = "IT"
provincia_titolare = "rm"
"""


@pytest.fixture
def app() -> Starlette:
    """A simulator whose clock runs an hour a second: activation (10 min) takes ~0.2 s."""
    return create_app(
        SimulatorSettings(send_rate=None, domain_certification_delay=60),
        clock=SimClock(start=START, speed=3600),
    )


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path) -> Invoke:
    """Run ``massiva ...`` on the simulator in-process, with a database in tmp_path."""
    transport = ContractTransport(httpx.ASGITransport(app=app))

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        return CliRunner().invoke(
            main,
            [
                "--db",
                str(tmp_path / "massiva.db"),
                "--api-url",
                "http://sim",
                "--sending-url",
                "http://sim",
                *args,
            ],
            obj=Env(transport=transport),
            env={"OPENAPI_TOKEN": TOKEN, **(env or {})},
            input=input,
            catch_exceptions=False,
        )

    return run


@pytest.fixture
def applicant(tmp_path: Path) -> Path:
    path = tmp_path / "richiedente.toml"
    path.write_text(APPLICANT, encoding="utf-8")
    return path


def as_json(result: Result) -> dict[str, object]:
    assert result.exit_code == 0, result.output
    value: dict[str, object] = json.loads(result.stdout)
    return value


def test_a_box_from_availability_to_active_renewed_and_revoked(
    invoke: Invoke, applicant: Path, tmp_path: Path
) -> None:
    # A box is named by its address (looked up) or by its id: both are used here.
    box = "Studio.Bianchi@pecmassiva.com"
    checked = invoke("mailbox", "check", "studio.bianchi@pecmassiva.com")
    registered = as_json(invoke("mailbox", "register", "--applicant", str(applicant), "--json"))
    box_id = str(registered["id"])
    form = invoke("mailbox", "form", box, "-o", str(tmp_path / "modulo.pdf"))
    form_json = as_json(
        invoke("mailbox", "form", box_id, "-o", str(tmp_path / "modulo-2.pdf"), "--json")
    )
    (tmp_path / "documento.pdf").write_bytes(pdf(pages=2))
    activated = as_json(
        invoke(
            "mailbox",
            "activate",
            box,
            str(tmp_path / "modulo.pdf"),
            str(tmp_path / "documento.pdf"),
            "--json",
        )
    )
    waited = invoke("mailbox", "wait", box, "--interval", "0.05", "--timeout", "60")
    active = as_json(invoke("mailbox", "status", box_id, "--json"))
    renewed = as_json(invoke("mailbox", "renew", box, "--years", "2", "--yes", "--json"))
    revoked = as_json(invoke("mailbox", "revoke", box_id, "--yes", "--json"))
    recorded = as_json(invoke("mailbox", "list", "--local", "--json"))

    assert checked.exit_code == 0
    assert checked.output == "studio.bianchi@pecmassiva.com is available.\n"
    assert (registered["address"], registered["state"]) == (
        "studio.bianchi@pecmassiva.com",
        "registrata",
    )
    assert form.exit_code == 0 and (tmp_path / "modulo.pdf").read_bytes().startswith(b"%PDF")
    assert form.stdout.startswith(f"Saved the activation form to {tmp_path / 'modulo.pdf'} (")
    assert form_json == {
        "id": box_id,
        "output": str(tmp_path / "modulo-2.pdf"),
        "bytes": (tmp_path / "modulo-2.pdf").stat().st_size,
    }
    assert activated["state"] == "in_evasione"
    assert waited.exit_code == 0, waited.output
    # A progress line a poll, naming the state: in_evasione, unless the review (0.17 s
    # at this clock) was over before the first poll, as on a loaded machine.
    assert "  studio.bianchi@pecmassiva.com: " in waited.stderr
    assert "is active until" in waited.stdout
    assert active["state"] == "evasa"
    expires = date.fromisoformat(str(active["expires"]))
    assert renewed["expires"] == expires.replace(year=expires.year + 2).isoformat()
    assert revoked["state"] == "revocata"
    assert recorded == [{**revoked, "expires_soon": False}]


# That no secret reaches the output or the database: tests/test_secrets.py.


def test_a_bad_applicant_lists_every_error_and_sends_nothing(
    invoke: Invoke, app: Starlette, tmp_path: Path
) -> None:
    bad = (
        APPLICANT.replace('"01/01/1980"', '"1980-01-01"')
        .replace('"00042"', '"42"')
        .replace('"studio.bianchi@pecmassiva.com"', '"studio.bianchi@gmail.com"')
        .replace('cognome_richiedente = "Bianchi"\n', "")
    )
    path = tmp_path / "bad.toml"
    path.write_text(bad, encoding="utf-8")

    result = invoke("mailbox", "register", "--applicant", str(path))

    assert result.exit_code == 2
    assert result.stderr.startswith("Error: nothing was sent; fix these first:\n")
    for field in ("casella_pec", "cognome_richiedente", "data_nascita_richiedente", "cap_titolare"):
        assert f"  - {field}: " in result.stderr
    simulator: Simulator = app.state.simulator
    assert simulator.requests == []


def test_documents_that_are_not_pdfs_are_refused_before_any_call(
    invoke: Invoke, app: Starlette, tmp_path: Path
) -> None:
    (tmp_path / "scan.jpg").write_bytes(b"\xff\xd8\xff\xe0 jpeg")

    result = invoke(
        "mailbox",
        "activate",
        "6045fdee3a716847a978a471",
        str(tmp_path / "scan.jpg"),
        str(tmp_path / "missing.pdf"),
    )

    assert result.exit_code == 2
    assert f"{tmp_path / 'scan.jpg'} is not a PDF (a JPEG image)" in result.stderr
    assert f"{tmp_path / 'missing.pdf'} does not exist" in result.stderr
    simulator: Simulator = app.state.simulator
    assert simulator.requests == []


async def upload(app: Starlette, box_id: str, document: bytes) -> None:
    async with ApiSession("http://sim", TOKEN, transport=httpx.ASGITransport(app=app)) as s:
        await PecClient(s).activate_mailbox(box_id, [document])


def test_wait_ends_with_exit_1_when_the_documents_are_refused(
    invoke: Invoke, applicant: Path, app: Starlette
) -> None:
    box_id = str(
        as_json(invoke("mailbox", "register", "--applicant", str(applicant), "--json"))["id"]
    )
    # The vendor refuses a one-page upload later (the identity document is missing);
    # massiva itself refuses it, so upload it the way another tool would.
    asyncio.run(upload(app, box_id, pdf(pages=1)))

    result = invoke("mailbox", "wait", box_id, "--interval", "0.05", "--timeout", "60")

    assert result.exit_code == 1
    assert "documenti_errati: the documents were refused" in result.stderr


def test_wait_gives_up_with_exit_5(invoke: Invoke, applicant: Path) -> None:
    box_id = str(
        as_json(invoke("mailbox", "register", "--applicant", str(applicant), "--json"))["id"]
    )

    result = invoke("mailbox", "wait", box_id, "--interval", "0.05", "--timeout", "0.1")

    assert result.exit_code == 5
    assert "is still registrata" in result.stderr


class VirtualTime:
    """A clock and a sleep on virtual time: sleeping moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_a_wait_lasts_its_whole_timeout_and_checks_at_its_end(
    app: Starlette, applicant: Path, tmp_path: Path
) -> None:
    # The case: --timeout 25 --interval 2 gave up after 16 s, as the next pause
    # (15 s) would have passed the timeout. The pause is cut short instead.
    polls: list[float] = []
    time = VirtualTime()
    async with (
        ApiSession("http://sim", TOKEN, transport=httpx.ASGITransport(app=app)) as session,
        await Store.open(tmp_path / "massiva.db") as store,
    ):
        provisioner = Provisioner(PecClient(session), store)
        box = await provisioner.register(validate_applicant(load_applicant(applicant)))

        with pytest.raises(WaitTimedOut) as timed_out:
            await provisioner.wait(
                box.id,
                patience=25,
                interval=2,
                on_poll=lambda box, elapsed: polls.append(elapsed),
                sleep=time.sleep,
                clock=time.clock,
            )

    assert polls == [0, 2, 5, 9.5, 16.25, 25]
    assert str(timed_out.value).startswith(
        "studio.bianchi@pecmassiva.com is still registrata after 25 s;"
    )


def test_an_address_no_box_has_is_refused_saying_where_to_look(
    invoke: Invoke, app: Starlette
) -> None:
    result = invoke("mailbox", "status", "nessuno@pecmassiva.com")
    scripted = invoke("mailbox", "wait", "nessuno@pecmassiva.com", "--json")

    message = (
        "no mailbox nessuno@pecmassiva.com on this account: `massiva mailbox list` shows"
        " them with their ids"
    )
    assert result.exit_code == scripted.exit_code == 2
    assert result.stderr == f"Error: {message}\n"
    assert json.loads(scripted.stdout) == {"error": {"message": message, "exit_code": 2}}


async def test_an_address_names_the_one_box_still_in_use(app: Starlette, tmp_path: Path) -> None:
    address = "ufficio@pecmassiva.com"
    async with (
        ApiSession("http://sim", TOKEN, transport=httpx.ASGITransport(app=app)) as session,
        await Store.open(tmp_path / "massiva.db") as store,
    ):
        provisioner = Provisioner(PecClient(session), store)
        now = datetime.now(UTC)
        await store.provisioning.save_mailboxes(
            [
                MailboxRow("a" * 24, address, "PECMASSIVA", "revocata", None, now),
                MailboxRow("b" * 24, address, "PECMASSIVA", "evasa", None, now),
            ]
        )
        in_use = await provisioner.box_id("UFFICIO@pecmassiva.com")
        await store.provisioning.save_mailboxes(
            [MailboxRow("c" * 24, address, "PECMASSIVA", "registrata", None, now)]
        )
        with pytest.raises(NotKnown) as two:
            await provisioner.box_id(address)

    assert in_use == "b" * 24
    assert str(two.value) == (
        f"{address} names more than one mailbox ({'a' * 24}, {'b' * 24}, {'c' * 24}): give"
        " the id of the one you mean"
    )


def test_without_a_token_it_says_how_to_configure_and_how_to_use_the_simulator(
    invoke: Invoke,
) -> None:
    result = invoke("mailbox", "list", env={"OPENAPI_TOKEN": ""})

    assert result.exit_code == 3
    assert "No Openapi token: set the environment variable OPENAPI_TOKEN" in result.stderr
    assert "massiva simulator --port 8080" in result.stderr


def test_list_warns_when_a_box_expires_within_30_days(
    invoke: Invoke, applicant: Path, app: Starlette, tmp_path: Path
) -> None:
    # Activated 340 days ago: a one-year box that expires in 25 days.
    simulator: Simulator = app.state.simulator
    simulator.clock.set(datetime.now(UTC) - timedelta(days=340))
    box_id = str(
        as_json(invoke("mailbox", "register", "--applicant", str(applicant), "--json"))["id"]
    )
    (tmp_path / "doc.pdf").write_bytes(pdf(pages=2))
    invoke("mailbox", "activate", box_id, str(tmp_path / "doc.pdf"))
    invoke("mailbox", "wait", box_id, "--interval", "0.05")

    listed = json.loads(invoke("mailbox", "list", "--json").stdout)
    table = invoke("mailbox", "list").stdout

    soon = {b["address"]: b["expires_soon"] for b in listed}
    assert soon == {"demo@pecmassiva.com": False, "studio.bianchi@pecmassiva.com": True}
    assert "renew soon" in table


def test_domain_lifecycle(invoke: Invoke) -> None:
    added = as_json(
        invoke("domain", "add", "pec.studiobianchi.it", "--provider", "infocert", "--json")
    )
    domain_id = str(added["id"])
    listed = invoke("domain", "list")
    status = as_json(invoke("domain", "status", "PEC.studiobianchi.it", "--json"))
    renewed = as_json(
        invoke("domain", "renew", "pec.studiobianchi.it", "--years", "2", "--yes", "--json")
    )
    revoked = as_json(invoke("domain", "revoke", domain_id, "--yes", "--json"))
    unknown = invoke("domain", "status", "pec.altro.it")

    assert added["state"] == "registrato"
    assert "pec.studiobianchi.it" in listed.output
    assert status["domain"] == "pec.studiobianchi.it"
    assert renewed["expires"] > str(added["expires"])
    assert revoked["state"] == "revocato"
    assert unknown.exit_code == 2
    assert unknown.stderr == (
        "Error: no domain pec.altro.it on this account: `massiva domain list` shows them"
        " with their ids\n"
    )


def test_quota_of_the_configured_mailbox(invoke: Invoke, tmp_path: Path) -> None:
    config = tmp_path / "massiva.toml"
    config.write_text('[mailboxes."demo@pecmassiva.com"]\npassword_env = "DEMO_PW"\n')

    result = invoke("--config", str(config), "quota", "--json", env={"DEMO_PW": "demo"})
    refused = invoke("--config", str(config), "quota", env={"DEMO_PW": "wrong"})

    quota = as_json(result)
    assert quota["mailbox"] == "demo@pecmassiva.com"
    assert float(str(quota["limit"])) > 0
    assert refused.exit_code == 3
    assert "HTTP 401" in refused.stderr and "mailbox's password" in refused.stderr
