"""Authoring a course: scaffolding an exercise, proving it discriminates, and building its distributions.

* :mod:`grader.authoring.scaffold`: ``grader new-exercise``;
* :mod:`grader.authoring.discrimination`: ``grader check-exercise --discrimination`` and the curriculum self-test;
* :mod:`grader.authoring.student_pack`, :mod:`grader.authoring.leaks`: the student pack, and proof it leaks no answer;
* :mod:`grader.authoring.course_dist`: the course as installable distributions (instructor, student).
"""
