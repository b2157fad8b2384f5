"""The weights page of a run (``weights.html``): bits per weight of the final model's file, per tensor,
and the honest line on sparse models' CPU speed that the run report carries.

The page loads the last stage's saved model (``NN_kind/model``) and asks the packer what each tensor
costs, as the run saved it (plain coding) and with ``coding="context"``. A model that cannot be rebuilt
without trusting code gets no page (the report says so) rather than a guess.
"""

from __future__ import annotations

from pathlib import Path

from netsculpt.report import format as fmt
from netsculpt.report.html import esc, note, page, section, table
from netsculpt.report.run import Run

PAGE_NAME = "weights.html"
CPU_SPARSE = (
    "CPU runtimes run unstructured and N:M sparse weights as dense ones: PyTorch's dense kernels multiply "
    "the zeros, ONNX Runtime densifies sparse initializers, and OpenVINO's sparse-weight decompression is "
    "for int8 MatMul on AMX CPUs only. Sparsity buys file size here, not speed; a 2:4 speed-up needs an "
    "Ampere or newer NVIDIA GPU (netsculpt.sparsity.to_semi_structured_)."
)


def final_model_dir(run: Run) -> Path | None:
    """The saved model of the run's last stage that has one, or None (a ``compress`` job, an ONNX end)."""
    stages = run.results.stages
    records = list(stages.values()) if isinstance(stages, dict) else list(stages)
    for record in reversed(records):
        folder = getattr(record, "dir", None)
        if folder and (run.path / folder / "model" / "model.safetensors").is_file():
            return run.path / folder / "model"
    return None


def _is_last_stage(run: Run, model_dir: Path) -> bool:
    """False when a later stage (a ``quantize``: an int8 ONNX / OpenVINO file) ends the run."""
    stages = run.results.stages
    records = list(stages.values()) if isinstance(stages, dict) else list(stages)
    return not records or getattr(records[-1], "dir", None) == model_dir.parent.name


def weights_rows(model_dir: Path) -> list[list]:
    """``[tensor, shape, values, zeros, stored as, bits plain, bits context, bytes plain, bytes context]``."""
    import netsculpt as ns
    from netsculpt.weights.file_bits import tensor_bits

    model = ns.load(model_dir)
    plain, coded = tensor_bits(model, "plain"), tensor_bits(model, "context")
    return [
        [p.name, p.shape, p.values, p.zeros, p.form, p.bits, c.bits, p.nbytes, c.nbytes]
        for p, c in zip(plain, coded)
    ]


def weights_page(run: Run, model_dir: Path, rows: list[list], report_name: str = "report.html") -> str:
    values = sum(r[2] for r in rows)
    plain, coded = sum(r[7] for r in rows), sum(r[8] for r in rows)
    file_bytes = (model_dir / "model.safetensors").stat().st_size
    intro = (
        f"{model_dir.parent.name}/model/model.safetensors: {fmt.size(file_bytes)} for {values:,} values "
        f"({8 * file_bytes / max(values, 1):.2f} bits per value; float32 is 32). "
        f"Tensors take {plain:,} bytes as saved (plain coding) and {coded:,} bytes with "
        f"ns.save(..., coding='context') "
        f"({8 * coded / max(values, 1):.2f} bits per value); the rest is the safetensors header."
    )
    body = [
        [
            (esc(r[0]), "name"),
            (esc("\u00d7".join(map(str, r[1])) or "scalar"), "text"),
            esc(f"{r[2]:,}"),
            esc(f"{r[3]:.1%}"),
            (esc(r[4]), "text"),
            esc(f"{r[5]:.2f}"),
            esc(f"{r[6]:.2f}"),
            esc(f"{r[7]:,}"),
            esc(f"{r[8]:,}"),
        ]
        for r in rows
    ]
    header = [("tensor", "name"), ("shape", "text"), "values", "zeros", ("stored as (saved)", "text"),
              "bits/value saved", "bits/value context", "bytes saved", "bytes context"]  # fmt: skip
    sections = [
        section("Bits per weight", note(esc(intro)), table(header, body), anchor="bits"),
        note(f'<a href="{esc(report_name)}">back to the run report</a>'),
    ]
    whose = "the final model's weights file"
    if not _is_last_stage(run, model_dir):
        whose = f"{model_dir.parent.name}'s weights file (the last PyTorch model; the run ends in int8)"
    subtitle = esc(f"run {run.path.resolve().name} \u00b7 {whose}")
    return page(f"{run.title}: weights file", subtitle, sections)


def weights_link(page_name: str | None) -> str:
    """The run report's pointer to the weights page, when one was written (``page_name``)."""
    if page_name is None:
        return ""
    text = f'<a href="{esc(page_name)}">bits per weight of every tensor of the final model\'s file</a>'
    return section("Weights file", note(text + ", as saved and with context coding"), anchor="weights")


def sparse_speed_note(run: Run) -> str:
    """Under the summary, for runs with a ``sparsify`` stage: its measured latency against its input's."""
    lines = []
    for i, stage in enumerate(run.stages):
        if stage.kind != "sparsify":
            continue
        before = run.stages[i - 1].latency if i else {}
        for runtime, by_batch in stage.latency.items():
            for batch, ms in by_batch.items():
                was = before.get(runtime, {}).get(batch)
                if was:
                    name = (
                        "PyTorch"
                        if runtime == "torch"
                        else "ONNX Runtime"
                        if runtime == "onnxruntime"
                        else runtime
                    )
                    lines.append(f"{name} batch {batch}: {fmt.millis(was)} before, {fmt.millis(ms)} after "
                                 f"({ms / was:.2f}x the time)")  # fmt: skip
        lines = lines or ["no latency recorded for it or its input"]
        return note(
            esc(f"Sparse weights are not faster on CPU. Stage {stage.name}: {'; '.join(lines)}. {CPU_SPARSE}")
        )
    return ""
