"""Teaching tools: generate exercises from solutions and autograde submissions.

``mmlab assign`` (:mod:`mmlab.teach.assign`) turns every notebook in ``solutions/`` into
its exercise in ``exercises/``; ``mmlab grade`` (:mod:`mmlab.teach.grade`) executes a
learner's notebook with the test cells restored from the solution and reports a score
per task. Cell metadata follows nbgrader (``metadata.nbgrader``), so an instructor who
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
