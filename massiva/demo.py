"""The whole job on the built-in simulator: provision a box, check and load a campaign,
send it, reconcile its receipts, write the reports. Nothing leaves this process.

The simulator's clock runs fast (two hours a second), so receipts due in hours come in
seconds; the sending pace stays the provider's real one, a request a second.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pypdf import PdfWriter

from massiva import resources
from massiva.api import ApiSession, PecClient, PecMassivaClient
from massiva.campaign import CampaignSpec, check, load_spec
from massiva.files import atomic_write
from massiva.lifecycle import OPEN
from massiva.loaded import find
from massiva.loading import load_campaign
from massiva.provisioning.applicant import validate_applicant
from massiva.provisioning.service import Provisioner
from massiva.reconcile import reconcile
from massiva.report import export, open_report, output_file
from massiva.sender import Progress, Sender, SendOptions
from massiva.simulator import SimClock, SimulatorSettings, create_app
from massiva.store import Store

EXAMPLE = resources.EXAMPLE_CAMPAIGN
TEMPLATES = resources.TEMPLATES
CLOCK_SPEED = 7200.0  # simulated seconds a real second
DEMO_TOKEN = "demo-token"  # noqa: S105 - the simulator takes any token
DEMO_PASSWORD = "demo"  # noqa: S105 - the simulator's demo box and every box it activates
# Where a recipient's story ends: every state but these.
APPLICANT = {
    "casella_pec": "studio.esempio@pecmassiva.com",
    "tipo_casella": "PECMASSIVA",
    "tipo_cliente": "PS",
    "sottotipo_cliente": "PA",
    "nome_richiedente": "Giulia",
    "cognome_richiedente": "Bianchi",
    "email": "giulia@studiobianchi.example",
    "telefono": "0548798569",
    "codice_fiscale_richiedente": "BNCGLI80A41H501C",
    "data_nascita_richiedente": "01/01/1980",
    "sesso_richiedente": "F",
    "nazione_nascita_richiedente": "IT",
    "provincia_nascita_richiedente": "RM",
    "indirizzo_titolare": "via Verdi 20",
    "comune_titolare": "Roma",
    "cap_titolare": "00042",
    "nazione_titolare": "IT",
    "provincia_titolare": "RM",
}


@dataclass
class DemoResult:
    """What the demo did and where its files are."""

    mailbox_state: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    reports: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def _identity_document() -> bytes:
    """A stand-in for the scanned identity document: one blank page."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def run_demo(
    out: Path,
    *,
    say: Callable[[str], None],
    on_progress: Callable[[Progress], None] = lambda progress: None,
    campaign: Path = EXAMPLE,
    templates: Path | None = TEMPLATES,
    patience: float = 120.0,
) -> DemoResult:
    """Run the whole job on a new in-process simulator; files go to ``out``."""
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    database = out / "massiva.db"
    for stale in (database, out / "massiva.db-wal", out / "massiva.db-shm"):
        stale.unlink(missing_ok=True)  # the demo starts from nothing each time
    clock = SimClock(speed=CLOCK_SPEED)
    app = create_app(SimulatorSettings(), clock=clock)
    result = DemoResult()
    async with (
        ApiSession("http://simulator", DEMO_TOKEN, transport=httpx.ASGITransport(app=app)) as api,
        await Store.open(database) as store,
    ):
        result.mailbox_state = await _provision(Provisioner(PecClient(api), store), out, say)
        spec = load_spec(campaign, shared_templates=templates)
        client = PecMassivaClient(api, spec.mailbox, DEMO_PASSWORD)
        await _load(store, spec, say)
        await _send(store, client, spec, clock, say, on_progress)
        result.counts = await _reconcile(store, client, spec, clock, say, patience)
        result.reports = await _reports(store, spec, out, templates)
    result.seconds = time.monotonic() - started
    return result


async def _provision(provisioner: Provisioner, out: Path, say: Callable[[str], None]) -> str:
    address = str(APPLICANT["casella_pec"])
    available = await provisioner.pec.is_available(address)
    say(f"1. Mailbox: {address} is {'available' if available else 'taken'}.")
    box = await provisioner.register(validate_applicant(APPLICANT))
    say(f"   Registered (id {box.id}, {box.state}).")
    form = out / "modulo-attivazione.pdf"
    with atomic_write(form) as written:
        written.write(await provisioner.pec.activation_form(box.id))
    identity = out / "documento-identita.pdf"
    with atomic_write(identity) as written:
        written.write(_identity_document())
    box = await provisioner.activate(box.id, [form, identity])
    say(f"   Signed form and identity document uploaded as one PDF ({box.state}).")
    box = await provisioner.wait(box.id, patience=60, interval=0.2, max_interval=1.0)
    say(f"   Active ({box.state}) until {box.expires:%d/%m/%Y}.")
    return box.state


async def _load(store: Store, spec: CampaignSpec, say: Callable[[str], None]) -> None:
    summary = check(spec)
    say(
        f"2. Campaign {spec.name}: {summary.rows} rows checked, {summary.valid} valid,"
        f" {summary.rejected} rejected, {summary.duplicates} duplicates."
    )
    loaded = await load_campaign(store, spec)
    say(f"   {loaded.added} recipients in the outbox.")


async def _send(
    store: Store,
    client: PecMassivaClient,
    spec: CampaignSpec,
    clock: SimClock,
    say: Callable[[str], None],
    on_progress: Callable[[Progress], None],
) -> None:
    say(f"3. Sending from {spec.mailbox}, one request a second (the provider's pace):")
    campaign = await find(store, spec.name)
    sender = Sender(
        store, client, campaign, spec, SendOptions(), clock=clock.now, on_progress=on_progress
    )
    progress = await sender.run()
    say(f"   {progress.sent} sent, {progress.rejected} rejected.")


async def _reconcile(
    store: Store,
    client: PecMassivaClient,
    spec: CampaignSpec,
    clock: SimClock,
    say: Callable[[str], None],
    patience: float,
) -> dict[str, int]:
    say("4. Reading the receipts until every recipient has its outcome:")
    campaign = await find(store, spec.name)
    deadline = time.monotonic() + patience
    while True:
        await reconcile(store, client, spec.mailbox, clock=clock.now)
        counts = await store.campaigns.counts(campaign.id)
        settled = {k: v for k, v in counts.items() if v and k not in OPEN}
        say(
            f"   {clock.now():%d/%m %H:%M} simulated: "
            + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        )
        if not any(counts[state] for state in OPEN):
            return counts
        if time.monotonic() > deadline:
            say(f"   Gave up waiting; settled so far: {settled}.")
            return counts
        await asyncio.sleep(1.0)


async def _reports(
    store: Store, spec: CampaignSpec, out: Path, templates: Path | None
) -> list[Path]:
    report, _ = await open_report(store, spec.name, shared_templates=templates)
    written = []
    for fmt in ("csv", "html"):
        path = out / f"report.{fmt}"
        with output_file(path) as file:
            await export(report, fmt, file, templates=templates)
        written.append(path)
    return written
