"""`netsculpt cluster` (DKM / k-means) and `netsculpt quantize` (int8; --task: quantize_dense)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from netsculpt.cli.common import add_model_args, example, forward_or_explain, load_model
from netsculpt.cli.depth_cmd import add_val_size_arg
from netsculpt.cli.train_cmd import add_data_args, data_defaults, loaders


def _bits(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--bits takes 1..8 or auto, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="palettize weights (DKM fine-tuning or k-means) and save them packed")
    add_model_args(p)
    add_data_args(p, batch="64")
    p.add_argument("--bits", type=_bits, default=4, help="bits per weight index, 1..8, or auto (searched)")
    p.add_argument("--budget-bytes", type=int, default=None, help="--bits auto: packed file size to fit")
    p.add_argument(
        "--bit-search", choices=("agent", "genetic", "nsga2"), default="agent", help="--bits auto: searcher"
    )
    p.add_argument("--episodes", type=int, default=40, help="--bits auto: agent episodes")
    add_val_size_arg(p, "--bits auto: training images held out to score")
    p.add_argument("--workers", type=int, default=0, help="--bits auto: local worker processes to score on")
    p.add_argument("--ray-address", default=None, help="--bits auto: score candidates on this Ray cluster")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the DKM fine-tuning (or --bits auto search) interrupted in --out; k-means reruns",
    )
    p.add_argument(
        "--method",
        choices=("dkm", "kmeans"),
        default="dkm",
        help="dkm: trained clustering; kmeans: post-training",
    )
    p.add_argument(
        "--group-size", type=int, default=None, help="output channels per codebook (default: per tensor)"
    )
    p.add_argument("--vector-dim", type=int, default=1, help="cluster vectors of this many weights")
    p.add_argument("--epochs", type=int, default=3, help="DKM fine-tuning epochs")
    p.add_argument("--lr", type=float, default=0.005, help="DKM fine-tuning learning rate")
    p.add_argument("--temperature", type=float, default=0.02, help="DKM softmax temperature (weight stds)")
    p.add_argument(
        "--dense-fp16",
        action="store_true",
        help="round unclustered tensors (BN, biases) to fp16 (ones beyond its range stay float32)",
    )
    p.add_argument("--out", required=True, help="output directory (a saved netsculpt model)")
    p.set_defaults(func=run_cluster)
    p = sub.add_parser(
        "quantize", help="int8 static quantization, calibrated on data (a detector: its backbone and head)"
    )
    add_model_args(p)
    add_data_args(p, task=True, batch="64; 16 with --task")
    p.add_argument(
        "--runtime",
        choices=("onnxruntime", "openvino", "torch", "auto"),
        default="onnxruntime",
        help="int8 runtime; openvino (NNCF) and torch (PT2E) with --task or auto; auto: each one, keep the "
        "fastest within --tolerance-pp, as a recipe's runtime: auto (docs/weights.md)",
    )
    p.add_argument(
        "--tolerance-pp",
        type=float,
        default=1.0,
        help="--runtime auto: held-out metric drop allowed (percentage points)",
    )
    p.add_argument(
        "--part",
        choices=("backbone", "backbone+head"),
        default=None,
        help="--task detection: the int8 part (default: backbone+head where the detector has model.head)",
    )
    p.add_argument(
        "--float-predictors",
        action="store_const",
        const=True,
        default=None,
        help="--task detection, backbone+head: keep the head's prediction convs float (the default)",
    )
    p.add_argument(
        "--no-float-predictors",
        dest="float_predictors",
        action="store_const",
        const=False,
        help="--task detection: the head's prediction convs int8 too (the default but on OpenVINO)",
    )
    p.add_argument("--calibration-batches", type=int, default=8, help="training batches the ranges come from")
    p.add_argument(
        "--method",
        choices=("minmax", "percentile", "entropy"),
        default="minmax",
        help="activation range calibration",
    )
    p.add_argument("--mixed", action="store_true", help="int8 for some layers, float for the rest")
    p.add_argument("--budget-ms", type=float, default=None, help="--mixed: ONNX Runtime latency to fit")
    p.add_argument("--episodes", type=int, default=16, help="--mixed: agent episodes")
    add_val_size_arg(p, "--mixed: training images held out to score")
    p.add_argument("--resume", action="store_true", help="--mixed: continue the search saved in --out")
    p.add_argument("--out", required=True, help="output directory for model.int8.onnx and model.fp32.onnx")
    p.set_defaults(func=run_quantize)


_DENSE_HINT = {
    "cluster": "use prune / distill / search / quantize with --task",
    "quantize": "pass --task detection / segmentation (with --data digits_detect, coco, ...)",
}


def _check_classifier_and_data(model, shape: tuple[int, ...], loader, command: str) -> None:
    """Both commands score top-1 accuracy and calibrate on image batches: refuse a detector or a
    segmenter (an ``OrderedDict`` or a list out) and data whose images do not have the model's input size,
    up front and with what to do, rather than as a traceback from deep inside ONNX Runtime."""
    import torch

    from netsculpt.errors import ConfigError

    what = f"the model cannot run an input of shape {tuple(shape)}"
    out = forward_or_explain(model, example(shape), what, "pass the shape it takes with --input-shape")
    model.eval()  # left in eval mode, as this check always left it
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        kind = (
            type(out).__name__
            if not isinstance(out, torch.Tensor)
            else f"a tensor of shape {tuple(out.shape)}"
        )
        raise ConfigError(
            f"`netsculpt {command}` works on classifiers (one row of class scores per image); this model "
            f"returns {kind}. For detectors and segmenters {_DENSE_HINT[command]}"
        )
    images = next(iter(loader))[0]
    if tuple(images.shape[1:]) != tuple(shape[1:]):
        raise ConfigError(
            f"the data's images are {tuple(images.shape[1:])} but the model's input is {tuple(shape[1:])}; "
            "match them with --resize / --channels (or --input-shape)"
        )


def run_cluster(args: argparse.Namespace) -> int:
    from netsculpt.io import save
    from netsculpt.train import TrainConfig, evaluate
    from netsculpt.weights import DKMConfig, KMeansConfig, cluster_model, packed_size_bytes

    data_defaults(args)
    model, shape = load_model(args)
    if args.bits == "auto" and args.budget_bytes is None:
        from netsculpt.errors import ConfigError

        raise ConfigError("--bits auto needs --budget-bytes N (the size of model.safetensors to fit)")
    common = {
        "bits": 8 if args.bits == "auto" else args.bits,
        "group_size": args.group_size,
        "vector_dim": args.vector_dim,
        "dense_dtype": "float16" if args.dense_fp16 else "float32",
    }
    batch = args.batch_size or 64
    train_loader, test_loader = loaders(args, batch, augment=False)
    _check_classifier_and_data(model, shape, test_loader, "cluster")
    float_acc, _ = evaluate(model, test_loader)
    float_bytes = packed_size_bytes(model)
    if args.method == "dkm":
        recipe = TrainConfig(epochs=args.epochs, lr=args.lr, warmup_epochs=0, batch_size=batch)
        config = DKMConfig(**common, temperature=args.temperature, train=recipe)
    else:
        config = KMeansConfig(**common)
    if args.bits == "auto":
        bits_text = _cluster_auto(args, model, config, train_loader, test_loader)
    else:
        cluster_model(model, config, train_loader, test_loader, **_checkpoints(args))
        bits_text = f"{args.bits}-bit"
    acc, _ = evaluate(model, test_loader)
    out = Path(args.out)
    save(model, out, extra={"input_shape": list(shape), "source": args.model, "cluster": config.to_dict()})
    size = (out / "model.safetensors").stat().st_size
    Console().print(
        f"{args.method} {bits_text}: accuracy {float_acc:.2%} -> {acc:.2%} "
        f"({(acc - float_acc) * 100:+.2f} pp); "
        f"weights {float_bytes:,} B -> {size:,} B ({float_bytes / size:.2f}x); saved to {out}"
    )
    return 0


def _checkpoints(args: argparse.Namespace) -> dict:
    """DKM fine-tuning checkpoints every epoch into ``--out``/checkpoints, so a killed run continues with
    ``--resume`` (to the weights the uninterrupted run ends with) instead of starting over."""
    from netsculpt.errors import ConfigError
    from netsculpt.train.checkpoint import CHECKPOINT_NAME

    if args.method != "dkm":
        return {}
    checkpoints = Path(args.out) / "checkpoints"
    if (checkpoints / CHECKPOINT_NAME).exists() and not args.resume:
        raise ConfigError(
            f"{str(checkpoints)!r} holds an earlier DKM run's checkpoints; pass --resume to continue it "
            "(a finished run is just snapped and saved again) or choose another --out"
        )
    return {"out_dir": checkpoints, "resume": args.resume}


def _cluster_auto(args: argparse.Namespace, model, config, train_loader, test_loader) -> str:
    """Bits per layer searched on ``--val-size`` held-out training images, then clustered; prints them."""
    from netsculpt.search.executors import make_executor
    from netsculpt.search.holdout import holdout_loaders
    from netsculpt.weights.haq import BitSearchConfig
    from netsculpt.weights.mixed_cluster import cluster_auto

    data = {"resize": args.resize, "channels": args.channels, "limit": args.limit, "root": args.data_root}
    _, held, _ = holdout_loaders(
        args.data, val_size=args.val_size, batch_size=64, eval_batch_size=125, **data
    )
    search = BitSearchConfig(
        method=args.bit_search, episodes=args.episodes, warmup=max(1, args.episodes // 4)
    )
    _, result = cluster_auto(
        model, config, args.budget_bytes, train_loader, held, test_loader, search,
        state_dir=Path(args.out) / "bit_search", resume=args.resume,
        executor=make_executor(args.workers, args.ray_address),
    )  # fmt: skip
    Console().print("bits per layer: " + ", ".join(f"{k} {b}" for k, b in result.bits.items()))
    return f"mixed-bit (budget {args.budget_bytes:,} B)"


def run_quantize(args: argparse.Namespace) -> int:
    from netsculpt.cli.quantize_auto import check_auto_options
    from netsculpt.cli.task_data import is_dense
    from netsculpt.errors import ConfigError
    from netsculpt.measure import onnx_latency
    from netsculpt.train import evaluate
    from netsculpt.weights.quantize import Int8Config, quantize_int8

    check_auto_options(args)
    if is_dense(args):  # the recipe stage's int8: a detector's backbone (+ head), a whole segmenter
        from netsculpt.cli.quantize_dense import run_dense_quantize

        return run_dense_quantize(args)

    for flag, value in (("--part", args.part), ("--float-predictors", args.float_predictors)):
        if value is not None:
            raise ConfigError(f"{flag} chooses a detector's int8 part: pass --task detection, or drop {flag}")
    if args.runtime not in ("onnxruntime", "auto"):
        raise ConfigError(
            f"`netsculpt quantize` quantizes classifiers on ONNX Runtime only; for --runtime {args.runtime} "
            f"use a recipe's quantize stage (runtime: {args.runtime}), --runtime auto (all three, the "
            "fastest kept) or drop --runtime"
        )
    data_defaults(args)
    model, shape = load_model(args)
    model.eval()
    train_loader, test_loader = loaders(args, args.batch_size or 64, augment=False)
    _check_classifier_and_data(model, shape, test_loader, "quantize")
    out = Path(args.out)
    if args.runtime == "auto":
        return _quantize_auto(model, shape, train_loader, test_loader, args, out)
    if args.mixed:
        return _quantize_mixed(args, model, shape, train_loader, test_loader, out)
    config = Int8Config(calibration_batches=args.calibration_batches, method=args.method)
    int8 = quantize_int8(model, example(shape), train_loader, out, config)
    float_acc, _ = evaluate(model, test_loader)
    int8_acc, _ = evaluate(int8, test_loader)
    fp32_path = out / "model.fp32.onnx"
    x = example(shape)
    fp32_ms, int8_ms = onnx_latency(fp32_path, x, runs=20), onnx_latency(int8.path, x, runs=20)
    Console().print(
        f"int8 ({config.method}, {config.calibration_batches} calibration batches): "
        f"accuracy {float_acc:.2%} -> {int8_acc:.2%}; "
        f"ONNX size {fp32_path.stat().st_size:,} B -> {int8.size_bytes:,} B; "
        f"ONNX Runtime latency (batch {shape[0]}) {fp32_ms:.3f} ms -> {int8_ms:.3f} ms; saved to {int8.path}"
    )
    return 0


def _quantize_auto(model, shape, train_loader, test_loader, args: argparse.Namespace, out: Path) -> int:
    """``--runtime auto``: the recipe stage's selection on the training batches, then test accuracy."""
    from netsculpt.cli.quantize_auto import select
    from netsculpt.runtimes.artefacts import load_artefact
    from netsculpt.train import evaluate

    info = select(args, model, example(shape), train_loader, None, out)
    if info["int8"]:
        float_acc, _ = evaluate(model, test_loader)
        int8_acc, _ = evaluate(load_artefact(out), test_loader)
        accuracy = f"test accuracy {float_acc:.2%} -> {int8_acc:.2%}"
        Console().print(f"int8 ({info['runtime']}): {accuracy}; saved to {out}")
    return 0


def _quantize_mixed(args: argparse.Namespace, model, shape, train_loader, test_loader, out: Path) -> int:
    """Layers chosen for int8 under ``--budget-ms`` (held-out training images score candidates)."""
    from netsculpt.errors import ConfigError
    from netsculpt.search.evaluator import take_batches
    from netsculpt.search.holdout import holdout_loaders
    from netsculpt.train import evaluate
    from netsculpt.weights.mixed_int import MixedIntConfig, quantize_mixed

    if args.budget_ms is None:
        raise ConfigError("--mixed needs --budget-ms T (the ONNX Runtime latency to fit, in ms)")
    data = {"resize": args.resize, "channels": args.channels, "limit": args.limit, "root": args.data_root}
    _, held, _ = holdout_loaders(
        args.data, val_size=args.val_size, batch_size=64, eval_batch_size=125, **data
    )
    config = MixedIntConfig(
        episodes=args.episodes,
        warmup=max(1, args.episodes // 4),
        calibration_batches=args.calibration_batches,
    )
    result = quantize_mixed(
        model, example(shape), train_loader, take_batches(held, 2, "held-out"), args.budget_ms, out, config,
        resume=args.resume,
    )  # fmt: skip
    float_acc, _ = evaluate(model, test_loader)
    acc, _ = evaluate(result.model, test_loader)
    Console().print(
        f"mixed int8/float: int8 layers {', '.join(result.int8_layers) or 'none'}; "
        f"accuracy {float_acc:.2%} -> {acc:.2%}; ONNX Runtime latency {result.float_ms:.3f} ms float, "
        f"{result.measured_ms:.3f} ms measured "
        f"(predicted {result.predicted_ms:.3f}, budget {result.budget_ms:.3f}); saved to {result.model.path}"
    )
    return 0
