"""A campaign folder → validated recipients, streamed.

A campaign is a folder holding ``campaign.toml`` (see :mod:`massiva.campaign.spec`),
the recipients CSV (:mod:`massiva.campaign.recipients`), the subject and body Jinja
templates (:mod:`massiva.campaign.templates`) and the attachments
(:mod:`massiva.campaign.attachments`). Typical use::

    spec = load_spec(Path("campaigns/example"), shared_templates=Path("templates"))
    summary = check(spec, rejects_csv=Path("scarti.csv"))   # every row rendered once
    renderer = Renderer(spec)
    for item in validate(spec):
        if isinstance(item, Recipient):
            subject, body = renderer.render(item.fields)
            files = message_attachments(spec, item.attachment)

Nothing here touches SQLite or the network.
"""

from massiva.campaign.attachments import message_attachments
from massiva.campaign.errors import CampaignError, RenderError
from massiva.campaign.recipients import CsvLayout, read_layout
from massiva.campaign.spec import CampaignSpec, csv_hash, load_spec
from massiva.campaign.templates import Renderer
from massiva.campaign.validation import (
    CheckSummary,
    Recipient,
    Reject,
    check,
    preflight,
    validate,
)

__all__ = [
    "CampaignError",
    "CampaignSpec",
    "CheckSummary",
    "CsvLayout",
    "Recipient",
    "Reject",
    "RenderError",
    "Renderer",
    "check",
    "csv_hash",
    "load_spec",
    "message_attachments",
    "preflight",
    "read_layout",
    "validate",
]
