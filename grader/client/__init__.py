"""The student's end of ``grader serve``: :mod:`grader.client.http` (``grader login/submit/status``) and
:mod:`grader.client.notebook` (``grader.check`` and ``grader.submit`` in Jupyter or Colab)."""
