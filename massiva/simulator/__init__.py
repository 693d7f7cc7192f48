"""A stateful simulator of the vendor's PEC (provisioning) and PEC Massiva (sending) APIs.

One Starlette app serves both APIs from one base URL (their paths do not collide); see
docs/simulator.md. It stands in for the vendor, so it imports nothing from the rest of
massiva but shared constants (``massiva.times.ROME``).
"""

from massiva.simulator.app import create_app
from massiva.simulator.clock import SimClock
from massiva.simulator.faults import ConnectionDropped, Fault
from massiva.simulator.models import InboxMessage, Mailbox, RequestRecord, SendRecord
from massiva.simulator.server import running_server, serve
from massiva.simulator.settings import Rule, SimulatorSettings, default_rules
from massiva.simulator.state import Simulator

__all__ = [
    "ConnectionDropped",
    "Fault",
    "InboxMessage",
    "Mailbox",
    "RequestRecord",
    "Rule",
    "SendRecord",
    "SimClock",
    "Simulator",
    "SimulatorSettings",
    "create_app",
    "default_rules",
    "running_server",
    "serve",
]
