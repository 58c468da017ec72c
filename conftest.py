"""Settings for every test run: the smoke preset, a fresh folder for notebook outputs, no hub access."""
import os
import tempfile

os.environ.setdefault("COURSE_PRESET", "smoke")
os.environ.setdefault("COURSE_RUNS_DIR", tempfile.mkdtemp(prefix="course-runs-"))
if "PYTEST_XDIST_WORKER" in os.environ:
    # A worker of pytest-xdist (pyproject.toml runs one per core). It and every notebook kernel or training subprocess
    # it starts (they inherit this environment) get:
    # - their own runs folder: en/01 and zh/01 write the same run names, and on two workers at once they would write
    #   the same checkpoints;
    # - the worker's share of the cores: two processes of two OpenMP threads each on two cores spin-wait on each other
    #   and ran a notebook cell many times slower. Set before torch is imported, since torch reads it when it starts.
    os.environ["COURSE_RUNS_DIR"] = os.path.join(os.environ["COURSE_RUNS_DIR"], os.environ["PYTEST_XDIST_WORKER"])
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_MININTERVAL", "5")
