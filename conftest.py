"""Settings for every test run: the smoke preset, a fresh folder for notebook outputs, no hub access."""
import os
import tempfile

os.environ.setdefault("COURSE_PRESET", "smoke")
os.environ.setdefault("COURSE_RUNS_DIR", tempfile.mkdtemp(prefix="course-runs-"))
if "PYTEST_XDIST_WORKER" in os.environ:  # each pytest-xdist worker in its own folder: en/01 and zh/01 write the same
    # run names, and on two workers at once they would write the same checkpoints
    os.environ["COURSE_RUNS_DIR"] = os.path.join(os.environ["COURSE_RUNS_DIR"], os.environ["PYTEST_XDIST_WORKER"])
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_MININTERVAL", "5")
