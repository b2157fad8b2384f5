"""HAQ part of benchmarks/automation.py: mixed-bit vs uniform 3-bit palettization on mnist5k.

``--model lenet5``: LeNet-5 trained on the mnist5k training digits minus 500 held out (cached);
``--model resnet20``: the AMC part's cached resnet20_cifar baseline (32x32x3, same 500 held out, DKM
with the augmenting recipe of benchmarks/weights.py). The bit search scores
k-means candidates on those 500; the test split only gives the final numbers. Uniform 3-bit and the
searched bits get the same DKM fine-tune (``--finetune-epochs`` epochs). The searched model is asked
to fit the packed size of the uniform 3-bit file, and, for the "same accuracy at >= 15% fewer bytes"
reading of the bar, 85% of it.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch
from _calibration import print_calibration
from _tables import bar

import netsculpt as ns
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import TrainConfig, evaluate, train
from netsculpt.weights import DKMConfig, cluster_model, packed_size_bytes, palettized_bits
from netsculpt.weights.haq import BitSearchConfig
from netsculpt.weights.mixed_cluster import cluster_auto

RESULTS = Path("benchmarks/results")


def _lenet(cache: Path, train_loader, test_loader) -> torch.nn.Module:
    path = cache / "lenet5_holdout500"
    if (path / "netsculpt.json").is_file():
        return ns.load(path).eval()
    config = TrainConfig.preset("lenet5_mnist5k")
    torch.manual_seed(config.seed)
    model = ns.create_model("lenet5", num_classes=10, in_channels=1)
    train(model, train_loader, test_loader, config)
    ns.save(model, path)
    return model.eval()


def _recipe(epochs: int, augment: bool = False) -> TrainConfig:
    return TrainConfig(
        epochs=epochs, batch_size=64, lr=0.005, warmup_epochs=0, label_smoothing=0.05, augment=augment
    )


def _base(model: str, cache: Path):
    """(train, held, test loaders, float model, its name) for ``--model``."""
    if model == "lenet5":
        loaders = holdout_loaders("mnist5k", val_size=500, batch_size=64, eval_batch_size=125)
        return (*loaders, _lenet(cache, loaders[0], loaders[2]), "LeNet-5")
    from automation import DATA, VAL_SIZE, resnet_baseline

    loaders = holdout_loaders("mnist5k", val_size=VAL_SIZE, batch_size=64, eval_batch_size=125, **DATA)
    base = resnet_baseline(Path("runs/bench/search"), 4, loaders[0], loaders[2])
    return (*loaders, base, "resnet20_cifar")


def haq_part(args) -> None:
    torch.set_num_threads(1)
    calibration = print_calibration("start")
    train_loader, held, test_loader, base, name = _base(args.model, Path(args.cache))
    augment = args.model != "lenet5"
    base_acc = evaluate(base, test_loader)[0]
    base_bytes = packed_size_bytes(base)
    lines = [f"float {name} (trained without the 500 held-out digits): {base_acc:.2%}, {base_bytes:,} B"]
    start = time.perf_counter()
    recipe = _recipe(args.finetune_epochs, augment)
    uniform = cluster_model(copy.deepcopy(base), DKMConfig(bits=3, train=recipe), train_loader, test_loader)
    u_bytes, u_acc = packed_size_bytes(uniform), evaluate(uniform, test_loader)[0]
    lines.append(f"uniform 3-bit DKM ({args.finetune_epochs} epochs): {u_acc:.2%}, {u_bytes:,} B "
                 f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
    rows = []
    for label, budget, method in (
        ("agent @ uniform-3 size", u_bytes, "agent"),
        ("agent @ 85% of it", int(u_bytes * 0.85), "agent"),
        ("GA @ uniform-3 size", u_bytes, "genetic"),
    ):
        start = time.perf_counter()
        search = BitSearchConfig(method=method, episodes=args.episodes, warmup=max(1, args.episodes // 4),
                                 pop_size=12, generations=5, seed=args.seed)  # fmt: skip
        config = DKMConfig(bits=8, train=recipe)
        model, _ = cluster_auto(copy.deepcopy(base), config, budget, train_loader, held, test_loader, search)
        acc = evaluate(model, test_loader)[0]
        size = packed_size_bytes(model)
        bits = {k.removesuffix(".weight"): b for k, b in palettized_bits(model).items()}
        seconds = time.perf_counter() - start
        rows.append({"label": label, "budget": budget, "bytes": size, "acc": acc, "bits": bits, "s": seconds})
        lines.append(f"{label}: {acc:.2%} at {size:,} B (budget {budget:,}); bits {bits}; {seconds:.0f} s")
        print(lines[-1], flush=True)
    end = print_calibration("end")
    gain = (rows[0]["acc"] - u_acc) * 100
    smaller = rows[1]
    lines.append(
        bar(gain >= 0.3, f"mixed @ uniform-3 size: {gain:+.2f} pp vs uniform 3-bit (bar >= +0.3 pp)")
    )
    lines.append(bar(smaller["acc"] >= u_acc and smaller["bytes"] <= 0.85 * u_bytes,
                     f"mixed @ {smaller['bytes'] / u_bytes:.0%} of the bytes: "
                     f"{(smaller['acc'] - u_acc) * 100:+.2f} pp "
                     "(bar: >= uniform's accuracy at <= 85% of its bytes)"))  # fmt: skip
    lines.append(f"calibration: {calibration} | {end}")
    for line in lines:
        print(line, flush=True)
    record = {"model": args.model, "seed": args.seed, "lines": lines, "rows": rows,
              "summary": f"uniform 3-bit {u_acc:.2%} at {u_bytes:,} B"}  # fmt: skip
    path = RESULTS / "automation_haq.json"
    data = json.loads(path.read_text()) if path.exists() else []
    data = [r for r in data if r.get("model") != args.model]
    path.write_text(json.dumps([*data, record], indent=1))


def int_part(args) -> None:
    """resnet20_cifar (the AMC part's cached baseline): int8/float mixture under a latency budget halfway
    between all-int8 and float, as measured in ONNX Runtime here; bar: measured within 10% of it."""
    from automation import DATA, VAL_SIZE, resnet_baseline

    from netsculpt.search.evaluator import take_batches
    from netsculpt.weights.mixed_int import MixedIntConfig, quantize_mixed

    torch.set_num_threads(1)
    calibration = print_calibration("start")
    train_loader, held, test_loader = holdout_loaders(
        "mnist5k", val_size=VAL_SIZE, batch_size=64, eval_batch_size=125, **DATA
    )
    base = resnet_baseline(Path("runs/bench/search"), 4, train_loader, test_loader)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = Path(args.cache) / "mixed_int"
    config = MixedIntConfig(episodes=args.episodes, warmup=max(1, args.episodes // 4), seed=args.seed)
    start = time.perf_counter()
    probe = quantize_mixed(base, x, train_loader, take_batches(held, 2, "held-out"), 1e3, out / "probe",
                           MixedIntConfig(episodes=1, warmup=0, seed=args.seed))  # fmt: skip
    budget = (probe.float_ms + probe.all_int8_ms) / 2  # both measured end to end
    measured = (probe.float_ms, probe.history["extra_ms"], probe.all_int8_ms)
    held_batches = take_batches(held, 2, "held-out")
    result = quantize_mixed(base, x, train_loader, held_batches, budget, out, config, measured)
    seconds = time.perf_counter() - start
    acc, float_acc = evaluate(result.model, test_loader)[0], evaluate(base, test_loader)[0]
    end = print_calibration("end")
    error = result.measured_ms / budget - 1
    lines = [
        f"ONNX Runtime, batch 1, 1 thread, thread clock: float {result.float_ms:.3f} ms, "
        f"all int8 {result.all_int8_ms:.3f} ms (both measured); budget {budget:.3f} ms; "
        f"{result.history['candidates_within_budget']} of {result.history['candidates']} candidates measured "
        "within it",
        f"chosen: {len(result.int8_layers)} of {len(result.history['extra_ms'])} layers int8; predicted "
        f"{result.predicted_ms:.3f} ms, measured {result.measured_ms:.3f} ms ({error:+.1%} vs budget); "
        f"test accuracy {float_acc:.2%} float -> {acc:.2%}; {seconds:.0f} s",
        bar(result.measured_ms <= budget * 1.10, f"measured latency within 10% of the budget ({error:+.1%})"),
        f"calibration: {calibration} | {end}",
    ]
    for line in lines:
        print(line, flush=True)
    record = {"model": "resnet20_int8", "seed": args.seed, "summary": "mixed int8/float latency budget",
              "lines": lines, "int8_layers": result.int8_layers,
              "extra_ms": result.history["extra_ms"]}  # fmt: skip
    path = RESULTS / "automation_haq.json"
    data = json.loads(path.read_text()) if path.exists() else []
    data = [r for r in data if r.get("model") != record["model"]]
    path.write_text(json.dumps([*data, record], indent=1))


def int4_part(args) -> None:
    """resnet20_cifar (the AMC part's cached baseline): int8 vs int4 per-channel weights in ONNX Runtime:
    test accuracy, .onnx bytes and batch-1 latency (one thread, thread clock) side by side."""
    from automation import DATA, VAL_SIZE, resnet_baseline

    from netsculpt.weights.config import default_filter
    from netsculpt.weights.mixed_int import _time
    from netsculpt.weights.quantize import Int8Config, quantize_int8

    torch.set_num_threads(1)
    calibration = print_calibration("start")
    train_loader, _, test_loader = holdout_loaders(
        "mnist5k", val_size=VAL_SIZE, batch_size=64, eval_batch_size=125, **DATA
    )
    base = resnet_baseline(Path("runs/bench/search"), 4, train_loader, test_loader).eval()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    layers = tuple(n for n, m in base.named_modules() if n and default_filter(m, n))
    out = Path(args.cache) / "int4"
    lines = [f"float: {evaluate(base, test_loader)[0]:.2%}"]
    for label, int4 in (("int8", ()), ("int4 all but conv1", layers[1:]), ("int4 all", layers)):
        q = quantize_int8(base, x, train_loader, out / label.replace(" ", "_"),
                          Int8Config(calibration_batches=8, int4_layers=int4))  # fmt: skip
        ms = _time(q.path, x, 200)
        acc = evaluate(q, test_loader)[0]
        lines.append(f"{label}: {acc:.2%}, {q.path.stat().st_size:,} B .onnx, {ms:.3f} ms batch 1")
        print(lines[-1], flush=True)
    float_ms = _time(out / "int8" / "model.fp32.onnx", x, 200)
    lines.append(f"float .onnx {(out / 'int8' / 'model.fp32.onnx').stat().st_size:,} B, {float_ms:.3f} ms")
    lines.append(f"calibration: {calibration} | {print_calibration('end')}")
    for line in lines:
        print(line, flush=True)
    path = RESULTS / "automation_haq.json"
    data = json.loads(path.read_text()) if path.exists() else []
    data = [r for r in data if r.get("model") != "resnet20_int4"]
    record = {"model": "resnet20_int4", "summary": "int8 vs int4 per-channel weights", "lines": lines}
    path.write_text(json.dumps([*data, record], indent=1))
