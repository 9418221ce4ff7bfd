"""The trusted check runner: the process that runs an exercise's checks against a sandboxed worker.

* :mod:`grader.checks.runner`: ``python -m grader.checks.runner CONFIG.json``, one grading;
* :mod:`grader.checks.warm`: a fork server of runners that have imported pytest and torch;
* :mod:`grader.checks.checking`: the pytest plugin that scores and classifies each check;
* :mod:`grader.checks.details`, :mod:`grader.checks.pictures`: what a check records for the report;
* :mod:`grader.checks.answers`, :mod:`grader.checks.runner_config`: recorded answers; the parent-runner contract.
"""
