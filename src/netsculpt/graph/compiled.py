"""Models netsculpt cannot trace or prune in place: compiled or scripted wrappers of a user's module.

Pruning must change the user's own ``nn.Module``; a ``torch.compile`` wrapper runs dynamo's bytecode and
a TorchScript module has no Python submodules, so both are refused with the module to pass instead, as is
a ``DataParallel`` wrapper (:mod:`netsculpt.parallel`).
"""

from __future__ import annotations

import torch

from netsculpt.errors import TraceError
from netsculpt.parallel import refuse_parallel


def refuse_compiled(model: torch.nn.Module) -> None:
    """A ``torch.compile``'d module runs dynamo's bytecode, not the module's forward, and pruning must
    change the user's own module, not the compiled wrapper: ask for the module it compiled."""
    import sys

    refuse_parallel(model)
    if isinstance(model, torch.jit.ScriptModule):  # scripted or traced: its Python modules are gone
        raise TraceError(
            f"the model is a TorchScript {type(model).__name__} (torch.jit.script / torch.jit.trace); "
            "netsculpt traces and prunes the eager nn.Module: pass that, then script the pruned result"
        )
    dynamo = sys.modules.get("torch._dynamo.eval_frame")  # not imported: nothing was compiled
    wrapper = getattr(dynamo, "OptimizedModule", None)
    if wrapper is None:
        return
    for name, m in model.named_modules():
        if isinstance(m, wrapper):
            path = "model" + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in name.split(".") if p)
            fix = f"set {path} = {path}._orig_mod" if name else "pass compiled._orig_mod"
            raise TraceError(
                f"{f'`{name}` of the model' if name else 'the model'} was compiled with torch.compile; "
                "netsculpt traces and prunes the module itself, not the compiled wrapper: use the "
                f"uncompiled module ({fix}), then compile the pruned result"
            )
