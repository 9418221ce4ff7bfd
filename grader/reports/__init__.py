"""What grader writes: :mod:`grader.reports.templating` (the one jinja environment), results.json
(:mod:`~grader.reports.results`), exports (:mod:`~grader.reports.exports`), the class report
(:mod:`~grader.reports.class_report`) and leaderboards (:mod:`~grader.reports.leaderboard`)."""
