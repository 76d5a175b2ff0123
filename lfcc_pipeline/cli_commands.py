"""The commands beside the pipeline's own: compare (methods side by side), predict (a bundle's top-k
labels, no torch), models (the short names) and doctor (what this machine can run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from lfcc_pipeline.cli_options import OptionsCommand, config_from_context, shared_options, table_of
from lfcc_pipeline.core.progress import setup_logging


@click.command("compare", cls=OptionsCommand)
@shared_options
@click.option("--methods", default=None, help="Comma-separated methods to compare. [default: every method]")
@click.option(
    "--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds, one student per (method, seed)."
)
@click.option(
    "--teacher-all-data", is_flag=True, help="Train the teacher on the whole training split (not --train-subset)."
)
def compare_cmd(methods: str | None, seeds: str, teacher_all_data: bool, **opts: Any) -> None:
    """Compare distillation methods: one teacher (trained once), every (method, seed) distilled through
    the pipeline's own stages with the same options; finished runs are skipped when run again.

    Writes <out>/compare/report.{json,md,png} (mean ± std test top-1 per method, gain over the student
    alone, seconds per run) and prints the table. --out defaults to runs/compare-<teacher>-<student>.

    \b
    Example (fashion-mini, a few minutes on 2 CPU cores):
      lfcc-pipeline compare --teacher test_vit --student test_resnet --data fashion-mini \\
          --methods none,lfcc --seeds 0 --epochs 1 --teacher-epochs 1 --img-size 32 --out runs/cmp
    """
    from lfcc_pipeline.core.options import int_list
    from lfcc_pipeline.methods import METHODS
    from lfcc_pipeline.pipeline.compare import ComparePlan, check_plan, compare, default_root

    setup_logging(opts["debug"])
    cfg = config_from_context(opts)
    names = tuple(m for m in (methods or ",".join(METHODS)).replace(" ", "").split(",") if m)
    plan = ComparePlan(cfg, names, int_list(seeds), cfg.out or default_root(cfg), teacher_all_data=teacher_all_data)
    check_plan(plan, tuple(METHODS))
    result = compare(plan, force=opts["force"])
    md = plan.root / "compare" / "report.md"
    click.echo(table_of(md))
    if result["skipped_runs"]:
        click.echo(f"skipped {result['skipped_runs']} finished run(s)", err=True)
    click.echo(f"report: {md.parent}", err=True)


@click.command("predict")
@click.option("--bundle", "bundle_dir", required=True, type=click.Path(path_type=Path), help="A bundle/ directory.")
@click.option("--model", default="student.onnx", show_default=True, help="Which ONNX file of the bundle.")
@click.option("--top-k", type=int, default=3, show_default=True, help="How many labels per image.")
@click.option("--ort-provider", default="cpu", show_default=True, help="cpu | cuda | tensorrt")
@click.option("--debug", is_flag=True, help="Show Python tracebacks.")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
def predict_cmd(
    bundle_dir: Path, model: str, top_k: int, ort_provider: str, debug: bool, images: tuple[Path, ...]
) -> None:
    """Print the top-k labels for each image using only the bundle (ONNX Runtime, numpy, Pillow; no torch).

    \b
    Example:
      lfcc-pipeline predict --bundle runs/demo/bundle shoe.png shirt.jpg
    """
    from lfcc_pipeline.predict import BundleModel

    if top_k < 1:
        raise click.BadParameter("--top-k must be >= 1")
    for p in BundleModel(bundle_dir, model, ort_provider).predict(list(images), top_k):
        click.echo(f"{p.image}: " + ", ".join(f"{label} ({100 * prob:.1f}%)" for label, prob in p.top))


@click.command("models")
@click.option("--debug", is_flag=True, help="Show Python tracebacks.")
def models_cmd(debug: bool) -> None:
    """List the short model names with their timm names, family and parameter count.

    Any timm model name is accepted as well (e.g. timm's tiny test_vit, test_resnet).

    \b
    Example:
      lfcc-pipeline models
    """
    import timm
    import torch

    from lfcc_pipeline.models.registry import SHORT_NAMES

    rows = [("short name", "timm name", "architecture", "family", "params (M, 1000 classes)")]
    for e in SHORT_NAMES.values():
        with torch.device("meta"):
            m = timm.create_model(e.timm_name, pretrained=False)
        rows.append((e.short, e.timm_name, e.arch, e.family, f"{sum(p.numel() for p in m.parameters()) / 1e6:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the probe as JSON.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks.")
def doctor_cmd(as_json: bool, debug: bool) -> None:
    """Print versions (python, torch, CUDA, timm, onnx, onnxruntime, TensorRT), devices, ONNX Runtime
    providers, and which targets can run on this machine.

    \b
    Example:
      lfcc-pipeline doctor
    """
    import json

    from lfcc_pipeline.runtimes.probe import probe
    from lfcc_pipeline.runtimes.targets import target_status

    env = probe()
    targets = target_status()
    if as_json:
        click.echo(json.dumps({"env": env, "targets": targets}, indent=2))
        return
    for k, v in env.items():
        click.echo(f"{k:18} {v if v not in (None, [], {}) else 'absent'}")
    click.echo("targets:")
    for t, reason in targets.items():
        click.echo(f"  {t:9} {'ok' if reason is None else 'no: ' + reason}")
