"""One registry of model edits: every architecture change a saved model can replay.

A saved model is its base architecture plus an ordered list of edits (``{"kind": "prune", ...}``).
Each kind is registered once with a JSON schema, an optional semantic check (limits the schema cannot
say) and a replay function. ``netsculpt.load`` validates every edit before it builds anything and
replays only registered kinds, so a file can name nothing else; a new compression method adds one
registration here, not another branch in ``netsculpt.io``.

    from netsculpt.edits import EditKind, register_edit
    register_edit(EditKind("sparsify", schema={...}, replay=my_replay, check=my_check))
"""

from __future__ import annotations

from netsculpt.edits.adder import ADDER
from netsculpt.edits.base import EDITS, EditKind, register_edit, replay_edits, validate_edits
from netsculpt.edits.branch import GROW_BRANCH
from netsculpt.edits.depth import DROP_ACTIVATIONS, FOLD, PRUNE_DEPTH
from netsculpt.edits.factorise import FACTORISE
from netsculpt.edits.grow import GROW
from netsculpt.edits.prune import PRUNE

for _kind in (PRUNE, FACTORISE, ADDER, PRUNE_DEPTH, FOLD, DROP_ACTIVATIONS, GROW, GROW_BRANCH):
    register_edit(_kind)

__all__ = ["EDITS", "EditKind", "register_edit", "replay_edits", "validate_edits"]
