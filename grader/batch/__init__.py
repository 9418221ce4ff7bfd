"""Grading a class: many submissions, graded in parallel, recorded in the gradebook.

* :mod:`grader.batch.jobs`: jobs and executors (local processes, warm runners);
* :mod:`grader.batch.run`: ``grader batch`` end to end (roster in, gradebook and reports out);
* :mod:`grader.batch.regrade`, :mod:`grader.batch.roster`, :mod:`grader.batch.similarity`;
* :mod:`grader.batch.ray_executor`: the same jobs as Ray tasks on a cluster.
"""
