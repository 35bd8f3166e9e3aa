"""pytest settings for ``pytest --nbval lessons/``: no progress bars in the kernels nbval starts
(they inherit this environment), so outputs are the same on every machine."""

import os

os.environ["FTCORE_PROGRESS"] = "0"
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
