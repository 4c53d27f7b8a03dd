"""An incident told as one story, from its first sign to the cluster healthy again: the last answer
from the primary, each missed slot, the failure, the request, then what the failover worker did
(claim, fence, witness, candidacy, lease wait, promotion, commit, demotion of the old primary) and
what followed (the old primary back, rejoined, resynced, healthy). Each step has its time to the
millisecond, who or what decided, and the evidence in words and units; the story says how long users
were without service and how that is derived, and names the events it raised.

`tell` is pure: rows in (an incident, its steps, its events and resync jobs), a `Story` out, so it is
tested without agents. `story_of` and `story_for_event` read the rows it needs (four queries).

- `model.py` — what a story is made of (`Story`, `Step`, `StoryEvent`, `Outage`, `Names`, `CAUSES`).
- `teller.py` — `tell`: the steps in order, the headline, the summary, the linked events; from
  `detection.py` (what was seen before the claim) and `recorded.py` (the workers' steps and the
  resync jobs, in words).
- `outage.py` — `outage_of`: how long users were without service, and how that is derived.
- `words.py` — the wording helpers they share (moments, sentences, sizes, readable facts).
- `load.py` — the rows read from the database (`story_of`, `story_for_event`, `INCIDENTS`).
"""

from .load import INCIDENTS, incident_of_event, story_for_event, story_of
from .model import CAUSES, Outage, Step, Story, StoryEvent
from .outage import outage_of
from .teller import tell

__all__ = [
    "CAUSES",
    "INCIDENTS",
    "Outage",
    "Step",
    "Story",
    "StoryEvent",
    "incident_of_event",
    "outage_of",
    "story_for_event",
    "story_of",
    "tell",
]
