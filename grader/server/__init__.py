"""The grading server: students `grader submit`, the server grades in sandboxes and keeps the gradebook.

* :mod:`grader.server.store`: tokens and the submission queue, in the gradebook's SQLite file;
* :mod:`grader.server.service`: who may submit, what is accepted, the grading workers;
* :mod:`grader.server.views`: what each reader sees of a result (visibility, release);
* :mod:`grader.server.app`: the HTTP API and web page (FastAPI), documented in docs/server.md.
"""
