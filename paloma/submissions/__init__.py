"""Leaderboard submissions: the versioned schema, validation, and `paloma submit`.

schema          the submission format (version 1) and its published JSON Schema
text            names and links strangers write: no markup, look-alikes or invisible characters
submit          a `paloma eval` run + metadata → a validated submission folder
recompute       a submission's aggregates recomputed from its per-domain sums
protocol_check  whether the benchmark's protocol was used, checked against its fingerprint
manifest        release manifests: what a complete evaluation of a release must have counted
validate        each submission alone, then all of one release together
pull_request    what a submission pull request may change (one new folder, nothing else)
"""

from paloma.submissions.schema import SCHEMA_ID, Submission, json_schema
from paloma.submissions.submit import submit
from paloma.submissions.validate import Problem, Report, validate

__all__ = ["SCHEMA_ID", "Problem", "Report", "Submission", "json_schema", "submit", "validate"]
