"""Teaching tools: generate exercises from solutions and autograde submissions.

``mmlab assign`` (:mod:`mmlab.teach.assign`) turns every notebook in ``solutions/`` into
its exercise in ``exercises/``; ``mmlab grade`` (:mod:`mmlab.teach.grade`) rebuilds a
learner's notebook from the assignment the instructor names (:mod:`mmlab.teach.rebuild`:
every cell from the solution except the learner's answers), runs it in a sandbox
(:mod:`mmlab.teach.sandbox`) and reports a score per task from verdicts learner code
cannot forge (:mod:`mmlab.teach._harness`). Test cells use :mod:`mmlab.teach.checks`. Cell metadata follows nbgrader (``metadata.nbgrader``), so an instructor who
prefers nbgrader can use ``solutions/`` as its source folder directly.
"""

from mmlab.teach.markers import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    cell_role,
    nbgrader_meta,
)

__all__ = [
    "BEGIN_SOLUTION", "END_SOLUTION", "BEGIN_HIDDEN", "END_HIDDEN",
    "cell_role", "nbgrader_meta",
]
