"""The recipient lifecycle is named in one place (massiva/lifecycle.py) and the database
is held to it: the ``CHECK`` list of states, the allowance each move counts or gives back
(the schema's triggers), and no state named in SQL or compared anywhere else."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from massiva.lifecycle import (
    FINAL,
    OPEN,
    POSTED_STATES,
    TRANSITIONS,
    State,
    Transition,
    allowed,
    check_move,
)
from massiva.store import Store
from tests.db import connect

PACKAGE = Path(__file__).resolve().parents[1] / "massiva"
#: Where state names may be written: the lifecycle itself, the released migrations
#: (history, never edited), the simulator (the vendor's words, not ours) and the receipt
#: kinds (the vendor's words too, some of which are spelt like states).
ALLOWED = {"lifecycle.py", "store/schema.py", "receipts.py"}
_NAMES = "|".join(State)


def _schema_states(store: Store) -> set[str]:
    """The states the ``CHECK`` on ``recipient.state`` lets in, as the database holds it:
    SQLite keeps the table's SQL, PostgreSQL the constraint (its ``= ANY (ARRAY[...])``
    form of the ``IN`` list)."""
    with connect(store) as conn:
        if not conn.postgresql:
            query = "SELECT sql FROM sqlite_master WHERE name = 'recipient'"
            sql = conn.execute(query).fetchone()[0]
            match = re.search(r"state\s+TEXT[^,]*?CHECK\s*\(\s*state\s+IN\s*\(([^)]*)\)", sql, re.S)
            assert match, sql
            return {name.strip().strip("'") for name in match.group(1).split(",")}
        checks = [
            row[0]
            for row in conn.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = 'recipient'::regclass AND contype = 'c'"
            ).fetchall()
        ]
    on_state = [c for c in checks if re.search(r"\(state\b", c)]
    assert len(on_state) == 1, checks
    match = re.fullmatch(r"CHECK \(\(state = ANY \(ARRAY\[([^]]*)\]\)\)\)", on_state[0], re.S)
    assert match, on_state[0]
    listed = match.group(1).split(",")
    names = {re.sub(r"^'(\w+)'::text$", r"\1", name.strip()) for name in listed}
    assert all(re.fullmatch(r"\w+", name) for name in names), listed
    return names


async def test_the_schema_allows_exactly_the_lifecycle_states(store: Store) -> None:
    assert _schema_states(store) == {str(s) for s in State}


def _row_in(store: Store, state: State) -> int:
    """A recipient put straight into ``state`` (an INSERT fires no move trigger), counted
    in its day and month as a claim would have."""
    with connect(store) as conn:
        conn.execute(
            "INSERT INTO campaign (id, name, folder, mailbox, subject, body,"
            " content_hash, csv_hash, created_at, updated_at)"
            " VALUES (1, 'c', '.', 'box@pec.it', 's', 'b', 'h', 'h', 'now', 'now')"
            " ON CONFLICT DO NOTHING"
        )
        (recipient,) = conn.execute(
            "INSERT INTO recipient (campaign_id, row, address, fields, subject, state,"
            " allowance_day, allowance_month, mailbox, updated_at)"
            " VALUES (1, 2, ?, '{}', 's', ?, 'D1', 'M1', 'box@pec.it', 'now')"
            " RETURNING id",
            (
                f"{state}-{conn.execute('SELECT count(*) FROM recipient').fetchone()[0]}@pec.it",
                str(state),
            ),
        ).fetchone()
        conn.execute(
            "INSERT INTO allowance (mailbox, period, used)"
            " VALUES ('box@pec.it', 'D1', 10), ('box@pec.it', 'M1', 10)"
            " ON CONFLICT (mailbox, period) DO UPDATE SET used = excluded.used"
        )
        return int(recipient)


def _move(store: Store, recipient: int, target: State) -> tuple[int, int]:
    """Move the row with a bare UPDATE; the (day, month) allowance change it caused."""
    with connect(store) as conn:
        conn.execute(
            "UPDATE recipient SET state = ?, allowance_day = 'D1', allowance_month = 'M1'"
            " WHERE id = ?",
            (str(target), recipient),
        )
        used = dict(conn.execute("SELECT period, used FROM allowance").fetchall())
    return used["D1"] - 10, used["M1"] - 10


MOVES = [(t, s) for t in TRANSITIONS for s in sorted(t.sources)]


@pytest.mark.parametrize(
    ("transition", "source"), MOVES, ids=[f"{s}->{t.target}" for t, s in MOVES]
)
async def test_each_move_counts_the_allowance_its_transition_declares(
    store: Store, transition: Transition, source: State
) -> None:
    recipient = _row_in(store, source)

    change = _move(store, recipient, transition.target)

    assert change == (transition.allowance, transition.allowance)


def test_final_states_never_move_and_open_ones_can() -> None:
    for final in FINAL:
        assert not any(allowed(final, target) for target in State), final
        with pytest.raises(ValueError, match=f"cannot move from {final}"):
            check_move(final, State.DELIVERED if final != State.DELIVERED else State.FAILED)
    for state in OPEN:
        assert any(allowed(state, target) for target in State), state
    # A receipt moves only a posted recipient.
    assert all(t.sources <= POSTED_STATES for t in TRANSITIONS if t.name in {"delivery", "failure"})


def test_every_state_can_be_reached_from_pending() -> None:
    reached, frontier = {State.PENDING}, [State.PENDING]
    while frontier:
        state = frontier.pop()
        for t in TRANSITIONS:
            if state in t.sources and t.target not in reached:
                reached.add(t.target)
                frontier.append(t.target)
    assert reached == set(State)


def _offences(path: Path) -> list[str]:
    """Where ``path`` names a recipient state outside the lifecycle module: a quoted SQL
    literal ('sent') in a string, or a bare name compared or used as a key."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and re.search(rf"'({_NAMES})'", node.value)
        ):
            found.append(f"{path.name}:{node.lineno}: SQL names a state: {node.value!r}")
        compared: list[ast.expr] = []
        if isinstance(node, ast.Compare):
            compared = [node.left, *node.comparators]
        elif isinstance(node, ast.Subscript):
            compared = [node.slice]
        for value in compared:
            if isinstance(value, ast.Constant) and value.value in set(State):
                found.append(f"{path.name}:{node.lineno}: compares or indexes {value.value!r}")
    return found


def test_no_module_but_the_lifecycle_names_a_state() -> None:
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in ALLOWED or relative.startswith("simulator/"):
            continue
        offences += _offences(path)
    assert offences == []


def test_the_check_finds_a_state_named_elsewhere(tmp_path: Path) -> None:
    # The check above can fail: a module with the old habits is caught.
    module = tmp_path / "old.py"
    module.write_text(
        "SQL = \"UPDATE recipient SET state = 'sent' WHERE id = ?\"\n"
        'def f(counts, row):\n    return counts["delivered"], row.state == "failed"\n',
        encoding="utf-8",
    )
    assert len(_offences(module)) == 3
