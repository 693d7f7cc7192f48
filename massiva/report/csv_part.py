"""A worker of a parallel CSV export (massiva.report.as_csv.write_csv), run as
``python -m massiva.report.csv_part SPEC``: writes one part, prints how many recipients
it wrote. SPEC is a JSON object of write_part's arguments."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from massiva.report.as_csv import write_part


def main() -> None:
    """Write the part SPEC (sys.argv[1]) names and print its number of recipients."""
    spec = json.loads(sys.argv[1])
    written = asyncio.run(
        write_part(
            Path(spec["database"]),
            int(spec["campaign_id"]),
            tuple(spec["key_columns"]),
            (int(spec["ids"][0]), int(spec["ids"][1])),
            str(spec["delimiter"]),
            Path(spec["part"]),
        )
    )
    print(written)


if __name__ == "__main__":
    main()
