"""Side by side with otter-grader on the same 12 self-attention checks: wall time for 1 and 8 submissions.

    python benchmarks/otter_compare.py --otter-python /path/to/venv/bin/python [--count 8] [--rounds 3]
    python benchmarks/otter_compare.py --write-tests      # regenerate benchmarks/otter/tests from CHECKS

otter-grader is not a dependency of grader: install it in a Python of its own (``python -m venv o &&
o/bin/pip install otter-grader==7.0.0``) that can import torch (this script adds the grader venv's
site-packages after otter's own, so its torch is found). The 12 checks of the ``self-attention`` exercise
(5 public and 2 hidden on scaled dot-product attention... see ``CHECKS``) are ported to otter's OK format in
``benchmarks/otter/tests/``, with the same points (15) and the same oracles (torch's
scaled_dot_product_attention and nn.MultiheadAttention).

Both graders first grade the reference (15/15) and the stub (0/15) so a broken port shows. Then, interleaved
per round: ``grader grade self-attention`` of ``--count`` copies of the reference in one command (warm
runners, each submission in its bubblewrap sandbox), otter's CLI (``otter run``) once per copy, and otter's
API (``otter.api.grade_submission``) called ``--count`` times in one process. Otter runs student code in its
own process with no sandbox: that is the price of its figure.
"""

from __future__ import annotations

import argparse
import json
import os
import pprint
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "benchmarks" / "otter" / "tests"
REFERENCE = ROOT / "reference" / "self-attention" / "solution.py"
STUB = ROOT / "exercises" / "self-attention" / "stub" / "solution.py"

#: the oracles, as the exercise's conftest has them, at the start of every check: otter refuses a suite ``setup``
#: and, for a .py submission, any support .py file (two Python files in the submission), so each test repeats them
SETUP = """
import torch
_ = torch.manual_seed(0)
F = torch.nn.functional
def close(a, b, dtype=torch.float32):
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.allclose(a, b, rtol=tol, atol=tol))
def torch_sdpa(q, k, v, mask=None, is_causal=False):
    if mask is not None and is_causal:
        mask = mask & torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        is_causal = False
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
def torch_weights(q, k, mask=None, is_causal=False):
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if is_causal:
        tri = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        mask = tri if mask is None else mask & tri
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, -1).nan_to_num(0.0)
def padding(lengths, s):
    return torch.arange(s)[None, :] < torch.tensor(lengths)[:, None]
def weights_for(d, dtype=torch.float32):
    return {n: torch.randn(d, d, dtype=dtype) / d ** 0.5 if n.startswith("w") else torch.randn(d, dtype=dtype)
            for n in ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")}
def torch_mha(w, h, q, k, v, attn_mask=None, key_padding_mask=None):
    m = torch.nn.MultiheadAttention(q.shape[-1], h, batch_first=True, dtype=q.dtype)
    with torch.no_grad():
        m.in_proj_weight.copy_(torch.cat([w["w_q"], w["w_k"], w["w_v"]]))
        m.in_proj_bias.copy_(torch.cat([w["b_q"], w["b_k"], w["b_v"]]))
        m.out_proj.weight.copy_(w["w_o"])
        m.out_proj.bias.copy_(w["b_o"])
    out, wts = m(q, k, v, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=True,
                 average_attn_weights=False)
    return out.detach(), wts.detach()
def student_mha(cls, d, h, w, q, k, v, **kw):
    mha = cls(d, h)
    mha.load_weights(dict(w))
    return mha.forward(q, k, v, **kw)
def sdpa_ok(fn, q, k, v, **kw):
    out, wts = fn(q, k, v, **kw)
    return close(out, torch_sdpa(q, k, v, **kw), q.dtype) and close(wts, torch_weights(q, k, **kw), q.dtype)
"""

#: each check starts from the oracles and the same seed
PREFIX = textwrap.dedent(SETUP).lstrip("\n")
#: (name, points, hidden, code): each check ends by asserting; a doctest passes when nothing is printed
CHECKS: list[tuple[str, int, bool, str]] = [
    ("sdpa_shapes_and_dtype", 1, False, """
for qs, ks, vs, dt in [((5, 8), (7, 8), (7, 6), torch.float32), ((2, 5, 8), (2, 7, 8), (2, 7, 3), torch.float64)]:
    q, k, v = (torch.randn(s, dtype=dt) for s in (qs, ks, vs))
    out, wts = scaled_dot_product_attention(q, k, v)
    assert out.shape == (*qs[:-1], vs[-1]) and wts.shape == (*qs[:-1], ks[-2]) and out.dtype == dt
"""),
    ("sdpa_matches_torch", 2, False, """
for shapes in [((6, 8), (6, 8), (6, 8)), ((2, 5, 8), (2, 7, 8), (2, 7, 3)),
               ((2, 3, 4, 16), (2, 3, 6, 16), (2, 3, 6, 16))]:
    q, k, v = (torch.randn(s) for s in shapes)
    assert sdpa_ok(scaled_dot_product_attention, q, k, v)
"""),
    ("sdpa_rows_sum_to_one", 1, False, """
q, k, v = torch.randn(2, 4, 8), torch.randn(2, 9, 8), torch.randn(2, 9, 5)
_, wts = scaled_dot_product_attention(q, k, v)
assert bool((wts >= 0).all()) and torch.allclose(wts.sum(-1), torch.ones(2, 4), atol=1e-5)
"""),
    ("sdpa_padding_mask", 2, False, """
q, k, v = torch.randn(3, 5, 8), torch.randn(3, 7, 8), torch.randn(3, 7, 4)
pattern = torch.rand(5, 7) < 0.5
pattern[torch.arange(5), torch.randint(0, 7, (5,))] = True
for mask in (padding([7, 4, 2], 7)[:, None, :], pattern):
    assert sdpa_ok(scaled_dot_product_attention, q, k, v, mask=mask)
"""),
    ("sdpa_causal", 1, False, """
for length, keys in ((6, 6), (4, 7), (7, 4)):
    q, k, v = torch.randn(2, length, 8), torch.randn(2, keys, 8), torch.randn(2, keys, 5)
    assert sdpa_ok(scaled_dot_product_attention, q, k, v, is_causal=True)
"""),
    ("mha_matches_torch", 2, False, """
w, x = weights_for(16), torch.randn(2, 5, 16)
out, wts = student_mha(MultiHeadAttention, 16, 4, w, x, x, x)
t_out, t_wts = torch_mha(w, 4, x, x, x)
assert close(out, t_out) and close(wts, t_wts)
"""),
    ("mha_cross_attention_with_padding", 1, False, """
w = weights_for(12)
q, k, v = torch.randn(2, 4, 12), torch.randn(2, 6, 12), torch.randn(2, 6, 12)
valid = padding([6, 3], 6)
out, wts = student_mha(MultiHeadAttention, 12, 3, w, q, k, v, mask=valid[:, None, None, :])
t_out, t_wts = torch_mha(w, 3, q, k, v, key_padding_mask=~valid)
assert close(out, t_out) and close(wts, t_wts)
"""),
    ("sdpa_float64_many_leading_dims", 1, True, """
q, k, v = (torch.randn(2, 3, 2, n, d, dtype=torch.float64) for n, d in ((5, 8), (6, 8), (6, 5)))
assert sdpa_ok(scaled_dot_product_attention, q, k, v)
"""),
    ("sdpa_mask_with_causal", 1, True, """
q, k, v = torch.randn(2, 6, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 4)
assert sdpa_ok(scaled_dot_product_attention, q, k, v, mask=padding([6, 4], 6)[:, None, :], is_causal=True)
q, k, v = torch.randn(2, 3, 8), torch.randn(2, 7, 8), torch.randn(2, 7, 4)
assert sdpa_ok(scaled_dot_product_attention, q, k, v, mask=padding([7, 5], 7)[:, None, :], is_causal=True)
"""),
    ("mha_float64_causal", 1, True, """
w, x = weights_for(8, torch.float64), torch.randn(3, 5, 8, dtype=torch.float64)
valid, future = padding([5, 3, 1], 5), torch.ones(5, 5, dtype=torch.bool).triu(1)
out, wts = student_mha(MultiHeadAttention, 8, 2, w, x, x, x, mask=valid[:, None, None, :], is_causal=True)
t_out, t_wts = torch_mha(w, 2, x, x, x, attn_mask=future, key_padding_mask=~valid)
assert close(out, t_out, torch.float64) and close(wts, t_wts, torch.float64)
"""),
    ("mha_head_counts", 1, True, """
w, x = weights_for(8), torch.randn(2, 4, 8)
for h in (1, 2, 8):
    out, wts = student_mha(MultiHeadAttention, 8, h, w, x, x, x)
    t_out, t_wts = torch_mha(w, h, x, x, x)
    assert close(out, t_out) and close(wts, t_wts)
"""),
    ("mha_rejects_indivisible_heads", 1, True, """
for d, h in ((10, 3), (12, 5)):
    try:
        MultiHeadAttention(d, h)
        raise AssertionError("built")
    except ValueError:
        pass
"""),
]


def _doctest(code: str) -> str:
    lines = textwrap.dedent(code).strip("\n").splitlines()
    return "\n".join(("... " if line[:1] in (" ", "") else ">>> ") + line for line in lines)


def write_tests(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for i, (name, points, hidden, code) in enumerate(CHECKS, 1):
        test = {"name": f"q{i:02d}", "points": points, "suites": [{
            "cases": [{"code": _doctest(PREFIX + textwrap.dedent(code).strip("\n")), "hidden": hidden,
                       "locked": False, "name": name}],
            "scored": True, "setup": "", "teardown": "", "type": "doctest"}]}
        spec = pprint.pformat(test, width=120, sort_dicts=False)
        (folder / f"q{i:02d}.py").write_text(f"# {name}: the self-attention check ported to otter's OK format\n"
                                             f"OK_FORMAT = True\n\ntest = {spec}\n", encoding="utf-8")


def _otter_env(otter_python: str) -> dict[str, str]:
    """otter's Python, with this environment's site-packages (torch) after its own: a .pth file written into
    otter's site-packages once (it is that benchmark venv's, and says where it points)."""
    done = subprocess.run([otter_python, "-c", "import site; print(site.getsitepackages()[0])"],
                          capture_output=True, text=True, check=True)
    target = Path(done.stdout.strip()) / "zz_grader_torch.pth"
    if not target.exists():
        target.write_text(sysconfig.get_paths()["purelib"] + "\n")
    return dict(os.environ, PYTHONWARNINGS="ignore")


API_SCRIPT = """
import json, sys, time
from otter.api import grade_submission
ag, subs = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
scores = [grade_submission(s, ag, quiet=True).total for s in subs]
print(json.dumps({"seconds": time.perf_counter() - start, "scores": scores}))
"""


def _otter_api(otter_python: str, ag: Path, subs: list[Path], env: dict[str, str]) -> tuple[float, list[float]]:
    start = time.perf_counter()
    done = subprocess.run([otter_python, "-c", API_SCRIPT, str(ag), *map(str, subs)], capture_output=True,
                          text=True, env=env)
    if done.returncode:
        raise SystemExit(f"otter's API failed:\n{done.stderr[-3000:]}")
    scores = json.loads(done.stdout.strip().splitlines()[-1])["scores"]
    return time.perf_counter() - start, scores


def _otter_cli(otter_python: str, ag: Path, subs: list[Path], env: dict[str, str], out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for sub in subs:
        subprocess.run([otter_python, "-m", "otter", "run", "-a", str(ag), "-o", str(out), str(sub)],
                       capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - start


def _ours(subs: list[Path], work: Path) -> tuple[float, list[float]]:
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "grader", "grade", "self-attention", *map(str, subs), "--out",
                           str(out)], capture_output=True, text=True, env=dict(os.environ, GRADER_WORK_DIR=str(work)))
    seconds = time.perf_counter() - start
    results = sorted(out.glob("*/self-attention/results.json"))
    if done.returncode or len(results) != len(subs):
        raise SystemExit(f"grader grade failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds, [float(json.loads(r.read_text())["score"]) for r in results]


def _copies(source: Path, folder: Path, count: int) -> list[Path]:
    subs = []
    for i in range(count):
        target = folder / f"s{i:02d}" / "solution.py"
        target.parent.mkdir(parents=True)
        shutil.copy(source, target)
        subs.append(target)
    return subs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--otter-python", help="a Python with otter-grader installed")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write-tests", action="store_true", help=f"regenerate {TESTS.relative_to(ROOT)} and stop")
    args = parser.parse_args()
    if args.write_tests:
        write_tests(TESTS)
        print(f"wrote {len(CHECKS)} tests into {TESTS}")
        return
    if not args.otter_python:
        parser.error("--otter-python is needed (a Python with otter-grader installed)")
    env = _otter_env(args.otter_python)
    with tempfile.TemporaryDirectory(prefix="otter-compare-") as tmp:
        root = Path(tmp)
        ag = root / "autograder.zip"
        subprocess.run([args.otter_python, "-m", "otter", "generate", "-t", str(TESTS), "-o", str(ag),
                        "--no-requirements", "--no-environment"], check=True, capture_output=True, env=env, cwd=root)
        ref, stub = _copies(REFERENCE, root / "ref", 1)[0], _copies(STUB, root / "stub", 1)[0]
        for label, sub, want in (("reference", ref, 15.0), ("stub", stub, 0.0)):
            _, ours = _ours([sub], root / "jobs")
            _, theirs = _otter_api(args.otter_python, ag, [sub], env)
            print(f"{label}: grader {ours[0]:g}/15, otter {theirs[0]:g}/15 (both must be {want:g})", flush=True)
        subs = _copies(REFERENCE, root / "many", args.count)
        figures: dict[str, list[float]] = {"grader": [], "otter run": [], "otter api": [], "grader 1": [],
                                           "otter api 1": []}
        for _ in range(args.rounds):
            figures["grader"].append(_ours(subs, root / "jobs")[0])
            figures["otter run"].append(_otter_cli(args.otter_python, ag, subs, env, root / "otter-out"))
            figures["otter api"].append(_otter_api(args.otter_python, ag, subs, env)[0])
            figures["grader 1"].append(_ours(subs[:1], root / "jobs")[0])
            figures["otter api 1"].append(_otter_api(args.otter_python, ag, subs[:1], env)[0])
    med = {k: statistics.median(v) for k, v in figures.items()}
    print(f"{args.count} submissions, median of {args.rounds} rounds, {os.cpu_count()} CPU(s):")
    print(f"  grader grade (warm, sandboxed)   {med['grader']:6.1f} s")
    for key, label in (("otter run", "otter run, once per submission"), ("otter api", "otter API, one process")):
        print(f"  {label:<32} {med[key]:6.1f} s  (grader: {med['grader'] / med[key]:.2f}x)")
    print(f"1 submission: grader {med['grader 1']:.1f} s, otter API {med['otter api 1']:.1f} s "
          f"({med['grader 1'] / med['otter api 1']:.2f}x)")


if __name__ == "__main__":
    main()
