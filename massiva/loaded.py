"""A loaded campaign as commands, the demo and a service act on it: found by name, its
folder proven unchanged before anything is sent, paused, resumed or cancelled (for good).

Each guard is here once; the command line only prints what they raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from massiva.campaign import CampaignSpec, load_spec
from massiva.store import CampaignRow, Store
from massiva.times import utcnow

#: What a campaign's state may be set to, and the verb that does it.
CAMPAIGN_STATES = {"pause": "paused", "resume": "active", "cancel": "cancelled"}


class UnknownCampaign(LookupError):
    """No campaign has the name asked for."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no campaign called {name!r}: see massiva campaign list")


class CampaignChanged(ValueError):
    """The campaign's folder is no longer what was checked and loaded."""


class CampaignCancelled(ValueError):
    """The campaign is cancelled: that is final."""


async def find(store: Store, name: str) -> CampaignRow:
    """The loaded campaign called ``name``; raises :class:`UnknownCampaign`."""
    campaign = await store.campaigns.get(name)
    if campaign is None:
        raise UnknownCampaign(name)
    return campaign


def as_loaded(
    campaign: CampaignRow,
    *,
    shared_templates: Path | None = None,
    pools: Mapping[str, tuple[str, ...]] | None = None,
) -> CampaignSpec:
    """The campaign's folder, read again and proven to be what was loaded: what was
    checked is what is sent. Raises :class:`CampaignChanged` when its templates or
    shared attachments changed, and ``CampaignError`` when it can no longer be read."""
    spec = load_spec(Path(campaign.folder), shared_templates=shared_templates, pools=pools)
    ensure_unchanged(campaign, spec)
    return spec


def ensure_unchanged(campaign: CampaignRow, spec: CampaignSpec) -> None:
    """Raise :class:`CampaignChanged` unless ``spec`` hashes as ``campaign`` was loaded."""
    if spec.content_hash() != campaign.content_hash:
        raise CampaignChanged(
            f"the templates or shared attachments in {campaign.folder} changed since"
            f" campaign {campaign.name!r} was loaded: restore them, or load the folder as a"
            " new campaign (a new name in campaign.toml)"
        )


async def set_state(store: Store, name: str, verb: str) -> CampaignRow:
    """Pause, resume or cancel (``verb``) the campaign ``name``; a running sender stops
    at its next claim. Raises :class:`CampaignCancelled` for a cancelled campaign:
    cancelled is final."""
    campaign = await find(store, name)
    if campaign.state == "cancelled" and verb == "cancel":
        return campaign
    if not await store.outbox.set_campaign_state(campaign.id, CAMPAIGN_STATES[verb], utcnow()):
        raise CampaignCancelled(f"campaign {name!r} is cancelled, and that is final")
    return await find(store, name)
