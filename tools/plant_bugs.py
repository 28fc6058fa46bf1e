"""Plant known bugs one at a time in a copy of the tree and check that the tests notice each.

    .venv/bin/python tools/plant_bugs.py            # each bug against the tests that guard it (a few minutes)
    .venv/bin/python tools/plant_bugs.py --all      # each bug against every test but the browser ones (8 min a
                                                    # bug), and the one browser test of a bug only a browser sees
    .venv/bin/python tools/plant_bugs.py --only ema # one bug

A bug is a file, a piece of its text and what to put instead. Each is planted in a fresh copy of the tracked files
(tracked and new files not ignored by git, so the working tree is never touched) and pytest runs there with this
checkout's interpreter. A bug is caught when at least one test fails; the script exits 1 if any bug is missed, or if
a bug's text is no longer in its file (the code moved on: update the bug, do not drop it).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bug:
    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]  # the tests that should catch it (pytest ids or files)


BUGS = (
    Bug("ema", "weight averaging switched off (the averaged weights are a documented default)",
        "cf_core/optim.py", "self.averaged = [p.detach().clone() for p in self.params] if self.decay else []",
        "self.averaged = []", ("tests/test_train.py",)),
    Bug("ema-not-kept", "the model ends holding its last weights, not the average",
        "cf_core/train.py", "        run.average.apply()  # the model ends holding the average\n", "",
        ("tests/test_train.py",)),
    Bug("keep-best-off", "keep_best forgets to put the best epoch's weights back",
        "cf_core/recording.py", "            model.load_state_dict(self.weights)", "            pass",
        ("tests/test_train.py", "tests/test_recommender.py")),
    Bug("smoothed-not-resumed", "a resumed fit starts its smoothed loss from zero",
        "cf_core/train.py", "        run.steps, run.loss.avg = meta[\"step\"], meta[\"ewma\"]",
        "        run.steps = meta[\"step\"]", ("tests/test_train.py", "tests/test_jobs.py")),
    Bug("moments-not-resumed", "a resumed fit starts its optimizer's moments from zero",
        "cf_core/train.py", "        run.step.load_state(meta, tensors)\n", "", ("tests/test_train.py",)),
    Bug("cold-offsets", "the cold-start fallback's damped user and item offsets set to zero",
        "cf_core/recommender.py",
        "        self.item_offset = (self.item_sum - n_mean_i) / (self.item_counts + ITEM_DAMPING)",
        "        self.item_offset = 0.0 * self.item_sum", ("tests/test_recommender.py",)),
    Bug("cold-fallback", "the cold-start prediction ignores the known user's or item's offset",
        "cf_core/recommender.py",
        "        pred = self.global_mean + np.where(u >= 0, self.user_offset[np.maximum(u, 0)], 0.0) \\\n"
        "            + np.where(i >= 0, self.item_offset[np.maximum(i, 0)], 0.0)",
        "        pred = self.global_mean + 0.0 * u", ("tests/test_recommender.py",)),
    Bug("compile-fails", "torch.compile fails in the fused step (the fallback must still be the real step)",
        "cf_core/fused.py", '        _compiled["grads"] = torch.compile(_batch_grads, dynamic=True)',
        '        _compiled["grads"] = lambda *a: (_ for _ in ()).throw(RuntimeError("no compiler"))',
        ("tests/test_fused.py",)),
    Bug("no-batch-points", "Progress records no batch points (the live loss curve stays empty)",
        "cf_core/progress.py", "                self.batches.append((info.epoch, info.smooth_loss, info.lr))",
        "                pass", ("tests/test_jobs.py",)),
    Bug("sigmoid-writeback", "the Train page forgets the sigmoid choice while the Bayesian fit hides its checkbox",
        "views/train.py", '    st.session_state["use_y_range"] = st.session_state["use_y_range"]\n', "",
        # AppTest keeps a hidden widget's value anyway, so the real browser is the test that can see this one
        ("tests/test_browser.py::test_the_sigmoid_choice_survives_a_visit_to_the_bayesian_fit",)),
    Bug("fold-in-prior", "a new user's fold-in fits a free bias under a fixed L2 (it predicted every item near one "
        "rating)", "cf_core/analysis.py",
        "            loss = ((pred - target).pow(2).sum() / prior.noise "
        "+ ((vector - prior.mean).pow(2) / prior.var).sum()\n"
        "                    + (bias - prior.bias_mean) ** 2 / prior.bias_var) / len(item)",
        "            loss = (pred - target).pow(2).mean() + 0.1 * vector.pow(2).sum()", ("tests/test_analysis.py",)),
    Bug("implicit-off", "the Bayesian fit ignores what each user rated even when asked to",
        "cf_core/train.py", "sampler = (RelationSampler if cfg.implicit else GibbsSampler)(",
        "sampler = (GibbsSampler)(", ("tests/test_bayes_fm.py",)),
)


def plant(bug: Bug, every_test: bool) -> tuple[bool, str]:
    """(caught, the last lines of pytest's output) for `bug` planted in a fresh copy of the tree."""
    with tempfile.TemporaryDirectory(prefix=f"planted-{bug.name}-") as tmp:
        files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
        for name in files.splitlines():
            src, dst = ROOT / name, Path(tmp) / name
            if src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        target = Path(tmp) / bug.path
        text = target.read_text()
        if text.count(bug.old) != 1:
            raise SystemExit(f"{bug.name}: its text is no longer (exactly once) in {bug.path}; update the bug")
        target.write_text(text.replace(bug.old, bug.new))
        browser = ["tests/test_browser.py", "tests/test_browser_team.py", "tests/test_browser_worker.py",
                   "tests/test_browser_injection.py"]
        # every test but the browser files, then a bug's own tests where only a browser can see it
        runs = [["tests", *(f"--ignore={b}" for b in browser)],
                [t for t in bug.tests if t.split("::")[0] in browser]] if every_test else [list(bug.tests)]
        tail = ""
        for tests in (r for r in runs if r):
            run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                                 cwd=tmp, capture_output=True, text=True)
            tail = "\n".join(run.stdout.strip().splitlines()[-3:])
            if run.returncode == 1:  # tests failed; anything else (errors, no tests) is not a catch
                return True, tail
        return False, tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="run every non-browser test against each bug")
    parser.add_argument("--only", choices=[b.name for b in BUGS], nargs="+")
    args = parser.parse_args()
    missed = []
    for bug in BUGS:
        if args.only and bug.name not in args.only:
            continue
        caught, tail = plant(bug, args.all)
        print(f"{'caught' if caught else 'MISSED'}  {bug.name}: {bug.what}\n"
              f"    {tail.splitlines()[-1] if tail else ''}", flush=True)
        if not caught:
            missed.append(bug.name)
    if missed:
        raise SystemExit(f"missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
