"""Settings for every test run: the smoke preset, a fresh folder for notebook outputs, no hub access."""
import os
import tempfile

os.environ.setdefault("COURSE_PRESET", "smoke")
os.environ.setdefault("COURSE_RUNS_DIR", tempfile.mkdtemp(prefix="course-runs-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_MININTERVAL", "5")
