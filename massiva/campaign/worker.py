"""A worker process of a large check or load (see massiva.campaign.validation):
``python -m massiva.campaign.worker``. It is sent the campaign and its header first,
then chunks of rows, and answers each chunk with its rows rendered and checked."""

from __future__ import annotations

from massiva.campaign.validation import finisher
from massiva.workers import serve

if __name__ == "__main__":
    serve(finisher)
