"""Downloads from the Hugging Face hub, with the messages a user of a gated dataset needs.

`allenai/paloma` is gated: a user must accept its licence on the hub and pass a token (`--token`,
`HF_TOKEN`, or `hf auth login`). A 401/403 is turned into a message that says so.
"""

from __future__ import annotations

from pathlib import Path

from paloma.errors import PalomaError


def download_dataset(
    repo_id: str, revision: str | None = None, allow_patterns: list[str] | None = None, token: str | None = None
) -> tuple[Path, str]:
    """Snapshot (part of) a hub dataset; returns (local folder, commit hash)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        folder = snapshot_download(
            repo_id,
            repo_type="dataset",
            revision=revision,
            allow_patterns=allow_patterns,
            token=token,
            # offline, a commit given as --data-revision is looked up in the cache (not listed on the hub)
            local_files_only=constants.HF_HUB_OFFLINE,
        )
    except GatedRepoError:
        raise PalomaError(_access_message(repo_id)) from None
    except RepositoryNotFoundError:
        raise PalomaError(f"data: dataset {repo_id!r} not found on the hub, or {_access_message(repo_id)}") from None
    except RevisionNotFoundError:
        raise PalomaError(f"data: dataset {repo_id!r} has no revision {revision!r}") from None
    except LocalEntryNotFoundError:
        raise PalomaError(
            f"data: {repo_id!r} is not in the hub cache while the hub cannot be reached "
            "(offline mode or no network); download it once with network access, or pass a local folder"
        ) from None
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status in (401, 403):
            raise PalomaError(_access_message(repo_id)) from None
        raise PalomaError(f"data: downloading {repo_id!r} failed: {err}") from None
    path = Path(folder)
    return path, path.name  # a snapshot folder is named after its commit hash


def _access_message(repo_id: str) -> str:
    return (
        f"access to the gated dataset {repo_id!r} was refused: accept its licence at "
        f"https://huggingface.co/datasets/{repo_id} while logged in, then pass a token with read access "
        "(--token, the HF_TOKEN variable, or `hf auth login`)"
    )
