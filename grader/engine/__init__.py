"""One grading, from the parent's side: :mod:`grader.engine.core` places it, picks the sandbox and starts the
runner; :mod:`grader.engine.submission` stages what was handed in (:mod:`~grader.engine.notebook` for notebooks,
:mod:`~grader.engine.archives` for zip files)."""
