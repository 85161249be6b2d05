"""Leaderboard submissions: the versioned schema, validation, and `paloma submit`."""

from paloma.submissions.schema import SCHEMA_ID, Submission, json_schema
from paloma.submissions.submit import submit
from paloma.submissions.validate import Problem, Report, validate

__all__ = ["SCHEMA_ID", "Problem", "Report", "Submission", "json_schema", "submit", "validate"]
