"""Reduced-precision rows against the same model in FP32: the `drop` column and the INT8 gate."""

from __future__ import annotations


def mark_drops(rows: list[dict], limit: float | None, fp32_top1=None) -> list[str]:
    """Add top1_drop (points lost against the same model in FP32) to INT8/FP16 rows; mark student INT8
    rows beyond `limit` (--max-int8-drop; None: no gate) with `gate`. Returns one line per marked row.

    The FP32 top-1 comes from an FP32 row of the same model (role and architecture) where there is one,
    else from `fp32_top1()` ({role: top-1}); without it, rows with no FP32 row of their model get no drop.
    """
    reduced = [r for r in rows if r["precision"] in ("int8", "fp16") and r.get("top1") is not None]
    if not reduced:
        return []

    def key(r: dict) -> tuple:
        return r["model"], r.get("name")  # role and architecture

    ref = {}
    for r in rows:
        if r["precision"] == "fp32" and r.get("top1") is not None:
            ref.setdefault(key(r), r["top1"])
    missing = [r for r in reduced if key(r) not in ref]
    if missing and fp32_top1 is not None:
        by_role = fp32_top1()
        ref.update({key(r): by_role[r["model"]] for r in missing})
    over = []
    for r in reduced:
        if key(r) not in ref:
            continue
        r["top1_drop"] = round(ref[key(r)] - r["top1"], 3)
        if limit is not None and r["model"] == "student" and r["precision"] == "int8" and r["top1_drop"] > limit:
            r["gate"] = f"top-1 drop {r['top1_drop']:.2f} > --max-int8-drop {limit:g}"
            over.append(
                f"student {r['target']} loses {r['top1_drop']:.2f} top-1 points against the FP32 student "
                f"({r['top1']:.2f}% vs {ref[key(r)]:.2f}%), more than --max-int8-drop {limit:g}"
            )
    return over
