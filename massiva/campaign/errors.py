"""The two errors of a campaign: one for the campaign as a whole, one for a row."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

TemplateKind = Literal["subject", "body"]


class CampaignError(ValueError):
    """The campaign cannot be used as it is; ``problems`` lists every problem found.

    Each problem says what is wrong, where (file, key, row or line) and how to fix it;
    ``str()`` gives one problem a line.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class RenderError(ValueError):
    """A template could not be rendered for one recipient.

    ``variable`` is the merge field at fault when one is known (an undefined variable, or
    the value a filter refused), ``template`` says which template failed, and ``message``
    is the whole reason, ready for a rejects file.
    """

    def __init__(self, variable: str | None, template: TemplateKind, message: str) -> None:
        self.variable = variable
        self.template: TemplateKind = template
        self.message = message
        super().__init__(message)
