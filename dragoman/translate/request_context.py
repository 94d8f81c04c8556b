"""What a translated request hands to the response direction: names to restore, what the client asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dragoman.redaction import clip
from dragoman.translate.tool_arguments import NOTE_INVALID, NOTE_REPAIRED, NOTE_UNWRAPPED
from dragoman.translate.tool_names import ToolNameMap

# Notes are kept for the audit record and the trace span. Some name what the input carried (`user {type} block
# dropped`, `output {type} item dropped`), so a request or an answer with thousands of made-up block types would
# otherwise make thousands of notes, each compared with all before it (quadratic, on the event loop: 8,000 blocks
# held it 0.35 s) and all written to the record. At most MAX_NOTES notes of at most NOTE_LENGTH characters are
# kept, then one OVERFLOW note; the notes the correctness loop reads are kept past the cap, so a request cannot
# hide what the upstream's tool arguments needed from the checks.
MAX_NOTES = 32
NOTE_LENGTH = 200
OVERFLOW = "further notes left out"
_LOOP_READS = frozenset((NOTE_INVALID, NOTE_REPAIRED, NOTE_UNWRAPPED))


@dataclass(slots=True)
class RequestContext:
    """Per-request facts the response translators and stream bridges need, plus translation notes."""

    message_id: str  # the Anthropic message id the client will see
    requested_model: str  # echoed back as `model`: the client cannot tell it was routed elsewhere
    tool_names: ToolNameMap
    stop_sequences: tuple[str, ...] = ()
    input_estimate: int = 0  # message_start carries it; the final message_delta carries the real count
    think_tags: bool = False
    max_tokens: int = 0  # the output budget sent upstream (translators set it): caps output estimates
    # The client's max_tokens when the upstream was given more (a reasoning model's floor): the visible output
    # is cut there (translate/output_budget.py). 0: the upstream's budget is the client's, it cuts itself.
    visible_max_tokens: int = 0
    system_prefix: str = ""  # the route's prompt-prefix variant: put before the client's system prompt
    notes: list[str] = field(default_factory=list)  # what was dropped or changed, for the audit record
    # For the correctness loop, when it is on (the exchange sets both): what a translated stream said as the client
    # got it (a loop/answer.py StreamFacts, which reads what the bridge noted of each block it made, or is shown each
    # batch when the bridge cuts: the checks read it instead of the bytes), and the input object of each tool call
    # the bridge closed, by block index (a bridge decodes the arguments anyway to tell whether they are whole, so
    # the checks need not decode them again), or the text the client got when it is not a JSON object.
    stream_facts: Any = None
    kept_arguments: dict[int, Any] | None = None

    def note(self, text: str) -> None:
        """Note what was dropped or changed, once (the list stays short: module comment)."""
        notes = self.notes
        text = clip(text, NOTE_LENGTH)
        if text in notes:  # at most MAX_NOTES + 4 entries to compare with
            return
        if len(notes) < MAX_NOTES or text in _LOOP_READS:
            notes.append(text)
        elif OVERFLOW not in notes:
            notes.append(OVERFLOW)
