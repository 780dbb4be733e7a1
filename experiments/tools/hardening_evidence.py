"""Run tests (and shell recipes) on an older commit and on this tree, and tabulate each outcome.

    python experiments/tools/hardening_evidence.py --old c1689f6 --cases cases.txt --out table.md

For the record of issue 26 (docs/results/hardening.md): each case of the issue has a test on
main; run on the commit before the fixes, it must fail, hang or leave processes behind, and
on this tree it must pass. `cases.txt` holds one case a line, `LABEL | TARGET [| TIMEOUT_S]`,
where TARGET is a pytest node id (tests/...) or `$ shell command` (run in the tree's root with
`rlfarm` importable from that tree; `{python}` is this interpreter).

The old commit gets a temporary git worktree (removed at the end) whose tests/ is this
tree's, with module paths rewritten to the old layout (the house refactor moved modules into
experiments/{run,launch,report,bench}/ and cluster/launch/). A test that still cannot import
there is reported as such: then the recipe line is the evidence.

Each target runs in its own session, bounded by its timeout. Left behind: the processes of
that session alive 5 s after it ended (or after a hang was killed); they are then killed by
PID. Not a package module: a tool, run by path.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OLD_LAYOUT = [  # (pattern, replacement) from today's module paths to those before the refactor
    (r"rlfarm\.experiments\.(run|launch|report)\b", "rlfarm.experiments"),
    (r"rlfarm\.experiments\.bench\.(scale|seeds)\b", r"rlfarm.experiments.\1"),
    (r"rlfarm\.experiments\.bench import (scale|seeds)\b", r"rlfarm.experiments import \1"),
    (r"rlfarm\.cluster\.launch\b", "rlfarm.cluster"),
]


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is `sid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stream:
                fields = stream.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            found.append(int(entry))
    return found


def run_one(target: str, tree: Path, pythonpath: str, timeout_s: float, log: Path) -> dict:
    if target.startswith("$"):
        argv = ["bash", "-c", target[1:].strip().replace("{python}", sys.executable)]
    else:
        argv = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "", target]
    env = dict(os.environ, PYTHONPATH=pythonpath, RLFARM_TORCH_THREADS="1", OMP_NUM_THREADS="1")
    begun = time.monotonic()
    with open(log, "w") as stream:
        proc = subprocess.Popen(argv, cwd=tree, env=env, stdout=stream, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout_s)
            hung = False
        except subprocess.TimeoutExpired:
            hung = True
            proc.kill()  # the test process only: what it started is what we count next
            proc.wait()
    seconds = time.monotonic() - begun
    time.sleep(5.0)
    left = [pid for pid in session_members(proc.pid) if pid != proc.pid]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    text = log.read_text(errors="replace")
    return {"rc": proc.returncode, "hung": hung, "s": seconds, "left": len(left), "text": text}


def describe(result: dict, is_test: bool) -> str:
    text = result["text"]
    if result["hung"]:
        words = f"hang, killed at {result['s']:.0f} s"
    elif is_test and result["rc"] == 0 and re.search(r"\d+ passed", text):
        words = f"pass ({result['s']:.0f} s)"
    elif is_test and ("ERROR collecting" in text or "ImportError" in text and "collected 0" in text):
        reason = re.search(r"E\s+(\w*Error: .{0,90})", text)
        words = f"cannot import: {reason.group(1) if reason else 'collection error'}"
    elif is_test and not re.search(r"\d+ (passed|failed|skipped|errors?)\b", text):
        words = f"the test process ended with exit {result['rc']} and no report ({result['s']:.0f} s)"
    elif is_test:
        reason = re.search(r"^E\s+(.{0,110})", text, re.M)
        words = f"fail ({result['s']:.0f} s): {reason.group(1).strip() if reason else 'see log'}"
    else:
        words = f"exit {result['rc']} ({result['s']:.0f} s)"
        said = [line.strip() for line in text.splitlines() if line.strip()]
        if said and "Traceback" not in text:
            words += f": {said[-1][:140]}"
        if not is_test and "Traceback" in text:
            last = [line for line in text.splitlines() if re.match(r"^[\w.]+(Error|Exception|Fault)\b", line)]
            words += f", traceback{': ' + last[-1][:90] if last else ''}"
    if result["left"]:
        words += f"; {result['left']} processes left behind"
    return words.replace("|", "/")


def old_tree(commit: str) -> tuple[Path, Path]:
    """(worktree of `commit` with today's tests in the old layout, a PYTHONPATH dir for it)."""
    base = Path(tempfile.mkdtemp(prefix="rlfarm-old-"))
    tree, pp = base / "tree", base / "pp"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True,
                   capture_output=True)
    pp.mkdir()
    (pp / "rlfarm").symlink_to(tree)
    shutil.rmtree(tree / "tests")
    shutil.copytree(ROOT / "tests", tree / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    for path in (tree / "tests").rglob("*.py"):
        text = original = path.read_text()
        for pattern, replacement in OLD_LAYOUT:
            text = re.sub(pattern, replacement, text)
        if text != original:
            path.write_text(text)
    return tree, pp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the commit before the fixes")
    parser.add_argument("--cases", required=True, help="LABEL | TARGET [| TIMEOUT_S] a line")
    parser.add_argument("--out", required=True, help="markdown table to write")
    parser.add_argument("--pythonpath", default="", help="makes this tree importable as rlfarm (default: as installed)")
    parser.add_argument("--logs", default="", help="folder for each run's output (default: a temp dir)")
    parser.add_argument("--only", choices=("old", "new", "both"), default="both")
    args = parser.parse_args(argv)
    cases = []
    for line in Path(args.cases).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            parts = [part.strip() for part in line.split(" | ")]  # a recipe may hold " | " itself
            timed = len(parts) > 2 and re.fullmatch(r"\d+(\.\d*)?", parts[-1])
            target = " | ".join(parts[1:-1] if timed else parts[1:])
            cases.append((parts[0], target, float(parts[-1]) if timed else 120.0))
    logs = Path(args.logs or tempfile.mkdtemp(prefix="rlfarm-evidence-"))
    logs.mkdir(parents=True, exist_ok=True)
    tree, pp = old_tree(args.old) if args.only != "new" else (None, None)
    rows = ["| case | test or recipe | old main | today |", "|---|---|---|---|"]
    try:
        for n, (label, target, timeout_s) in enumerate(cases):
            is_test = not target.startswith("$")
            cells = []
            for side in ("old", "new"):
                if args.only not in (side, "both"):
                    cells.append("not run")
                    continue
                where, path = (tree, str(pp)) if side == "old" else (ROOT, args.pythonpath)
                result = run_one(target, where, path, timeout_s, logs / f"{n:02d}-{side}.log")
                cells.append(describe(result, is_test))
                print(f"{label} [{side}]: {cells[-1]}", flush=True)
            shown = f"`{target}`" if is_test else f"`{target[1:].strip()}`"
            rows.append(f"| {label} | {shown.replace('|', '/')} | {cells[0]} | {cells[1]} |")
            Path(args.out).write_text("\n".join(rows) + "\n")
    finally:
        if tree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
            shutil.rmtree(tree.parent, ignore_errors=True)
    print(f"wrote {args.out}; logs in {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
