"""torchrun with the gloo backend on CPU: 2 processes train like 1 process on the same global batch."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from safetensors.torch import load_file

from tests.conftest import ROOT, cli

pytestmark = pytest.mark.slow
# fp32: bf16 (--precision auto on CPUs with native bf16) rounds differently per batch shape, so 2 ranks
# would not reproduce 1 to the tolerances below
COMMON = ["--teacher", "test_convnext", "--student", "test_vit", "--data", "fashion-mini", "--img-size", "32",
          "--epochs", "2", "--batch-size", "32", "--train-subset", "640", "--target", "ort-fp32",
          "--precision", "fp32"]  # fmt: skip
ENV = {"OMP_NUM_THREADS": "1"}


def torchrun(*args, nproc=2):
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
         "-m", "lfcc_pipeline", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **ENV},
    )  # fmt: skip


def kill_all_running(proc: subprocess.Popen, marker: str) -> None:
    """SIGKILL the launcher's process group and every process whose command line holds `marker`:
    torchrun starts its ranks in sessions of their own, so they outlive a kill of its group."""
    os.killpg(proc.pid, signal.SIGKILL)
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes().decode(errors="replace"):
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (OSError, ValueError):  # gone already
            pass


def max_weight_diff(a, b):
    wa, wb = load_file(str(a / "student" / "model.safetensors")), load_file(str(b / "student" / "model.safetensors"))
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "single"
    r = cli("distill", "--method", "kd", *COMMON, "--teacher-epochs", "1", "--out", str(out), env=ENV)
    assert r.returncode == 0, r.stderr
    return out


def test_two_processes_match_one(single, tmp_path):
    out = tmp_path / "two"
    r = torchrun("distill", "--method", "kd", *COMMON, "--teacher-epochs", "0",
                 "--teacher-weights", str(single / "teacher" / "model.safetensors"), "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert max_weight_diff(single, out) < 1e-3
    h1 = json.loads((single / "student" / "metrics.json").read_text())["history"]
    h2 = json.loads((out / "student" / "metrics.json").read_text())["history"]
    for a, b in zip(h1, h2, strict=True):  # reduced losses and validation counts agree
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-3 and abs(a["val_top1"] - b["val_top1"]) < 0.5
    assert r.stdout.count("| student |") <= 1  # only rank 0 reports
    assert (r.stdout + r.stderr).count("run directory:") == 1  # also after the process group is gone


def test_whole_run_under_torchrun_trains_the_teacher_too(single, tmp_path):
    """`torchrun ... run`: teacher training, distillation, export and bench; both trained models match
    the single-process run on the same global batch, and only rank 0 reports."""
    out = tmp_path / "run"
    r = torchrun("run", "--method", "kd", *COMMON, "--teacher-epochs", "1", "--bench-iters", "5",
                 "--bench-max-images", "256", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    for role in ("teacher", "student"):
        wa = load_file(str(single / role / "model.safetensors"))
        wb = load_file(str(out / role / "model.safetensors"))
        assert max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa) < 1e-3, role
    assert (out / "bench" / "report.json").is_file() and (out / "bundle" / "student.onnx").is_file()
    assert r.stdout.count("| student |") == 1  # one target, printed by rank 0 alone


def test_lfcc_with_negatives_from_both_ranks_matches_one_process(single, tmp_path):
    """LFCC under torchrun: InfoNCE gathers embeddings across ranks (autograd through the gather; its exact
    gradients are checked below). The projectors' BatchNorm keeps per-process statistics, so the weights
    match the single-process run only approximately (0.010 measured)."""
    teacher = ["--teacher-epochs", "0", "--teacher-weights", str(single / "teacher" / "model.safetensors")]
    one, two = tmp_path / "one", tmp_path / "two"
    r = cli("distill", "--method", "lfcc", *COMMON, *teacher, "--out", str(one), env=ENV)
    assert r.returncode == 0, r.stderr
    r = torchrun("distill", "--method", "lfcc", *COMMON, *teacher, "--out", str(two))
    assert r.returncode == 0, r.stderr[-3000:]
    assert max_weight_diff(one, two) < 0.05


@pytest.mark.parametrize("first, then", [(1, 2), (2, 1)])
def test_resume_under_another_world_size(single, tmp_path, first, then):
    """A checkpoint written by `first` processes (killed mid-run) resumes under `then` processes and
    ends where the uninterrupted single-process run ends."""
    out = tmp_path / "resumed"
    args = ["distill", "--method", "kd", *COMMON, "--teacher-epochs", "0", "--ckpt-every", "5",
            "--teacher-weights", str(single / "teacher" / "model.safetensors"), "--out", str(out)]  # fmt: skip
    launch = [sys.executable, "-m", "lfcc_pipeline"]
    if first > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={first}",
                  "-m", "lfcc_pipeline"]  # fmt: skip
    proc = subprocess.Popen([*launch, *args], cwd=ROOT, env={**os.environ, **ENV}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    ckpt = out / "student" / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    kill_all_running(proc, str(out))
    proc.wait()
    assert ckpt.exists()
    r = torchrun(*args) if then > 1 else cli(*args, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from" in r.stderr
    assert max_weight_diff(single, out) < 1e-3


def _info_nce_worker(rank, world, store, zs, zt, out):
    from lfcc_pipeline.methods.lfcc import info_nce

    # A file store in the test's own directory: no port to collide with another run's.
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    n = zs.shape[0] // world
    a = zs[rank * n : (rank + 1) * n].clone().requires_grad_()
    b = zt[rank * n : (rank + 1) * n].clone().requires_grad_()
    loss = info_nce(a, b, 0.1)
    (loss / world).backward()  # DDP averages gradients over ranks
    grads = [torch.zeros_like(a) for _ in range(world)], [torch.zeros_like(b) for _ in range(world)]
    dist.all_gather(grads[0], a.grad)
    dist.all_gather(grads[1], b.grad)
    losses = [torch.zeros(()) for _ in range(world)]
    dist.all_gather(losses, loss.detach())
    if rank == 0:
        torch.save({"ga": torch.cat(grads[0]), "gb": torch.cat(grads[1]), "loss": torch.stack(losses).mean()}, out)
    dist.barrier()  # neither rank tears down gloo while the other is still in a collective
    dist.destroy_process_group()


def test_info_nce_negatives_are_gathered_across_ranks(tmp_path):
    """Two ranks with half a batch each give the single-process loss and gradients of the whole batch."""
    from lfcc_pipeline.methods.lfcc import info_nce

    g = torch.Generator().manual_seed(0)
    zs = F.normalize(torch.randn(8, 4, generator=g), dim=1)
    zt = F.normalize(torch.randn(8, 4, generator=g), dim=1)
    mp.spawn(_info_nce_worker, args=(2, str(tmp_path / "store"), zs, zt, str(tmp_path / "g.pt")), nprocs=2, join=True)
    got = torch.load(tmp_path / "g.pt", weights_only=True)
    a, b = zs.clone().requires_grad_(), zt.clone().requires_grad_()
    loss = info_nce(a, b, 0.1)
    loss.backward()
    assert torch.allclose(got["loss"], loss.detach(), atol=1e-6)
    assert torch.allclose(got["ga"], a.grad, atol=1e-6) and torch.allclose(got["gb"], b.grad, atol=1e-6)
