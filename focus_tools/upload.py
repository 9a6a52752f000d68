"""Uploading a converted folder to the Hugging Face Hub as a dataset repository.

Credentials and write access are checked before the long conversion starts (check_hub_access),
and every Hub failure becomes one line that says what to do. No message holds the token.
"""

from __future__ import annotations

import os
import re

import huggingface_hub
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

from focus_common.messages import quote
from focus_common.ownership import MANIFEST
from focus_tools.schema import FocusDataError
def check_hub_access(repo_id: str, *, token: str | None = None) -> str:
    """Check that the Hub can be reached, that we are logged in, and may write to repo_id's
    namespace; return the user name. Raises FocusDataError saying what to do."""
    try:
        identity = huggingface_hub.HfApi(token=token).whoami()
    except Exception as err:  # noqa: BLE001 - the Hub client raises from several HTTP libraries
        raise FocusDataError(f"cannot push to {quote(repo_id)}: {hub_problem(err)}") from None
    name = identity.get("name", "?")
    namespace = repo_id.split("/")[0] if "/" in repo_id else name
    writable = {name, *(org.get("name") for org in identity.get("orgs", []))}
    if namespace not in writable:
        raise FocusDataError(f"cannot push to {quote(repo_id)}: logged in as {quote(name)}, who cannot write to "
                             f"{quote(namespace)}; choose a repository of yours or of your organisations "
                             f"{sorted(writable - {name})}")
    if identity.get("auth", {}).get("accessToken", {}).get("role") == "read":
        raise FocusDataError(f"cannot push to {quote(repo_id)}: the token is read-only; log in with a write token "
                             "(`hf auth login`)")
    return name


def push_to_hub(output: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Upload a converted folder as a Hub dataset repository; return the commit URL."""
    api = huggingface_hub.HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        # The toolkit's bookkeeping (what convert wrote, locks) stays local.
        info = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(output),
                                 commit_message="Upload FOCUS converted by focus-dataset",
                                 ignore_patterns=[f"**/{MANIFEST}*", MANIFEST, "**/.lock", ".lock"])
    except Exception as err:  # noqa: BLE001 - the Hub client raises from several HTTP libraries
        raise FocusDataError(f"cannot push to {quote(repo_id)}: {hub_problem(err)}. The converted folder is "
                             f"complete: upload it later with `focus-dataset push {output} {repo_id}`"
                             ) from None
    return str(info)


def hub_problem(err: Exception) -> str:
    """A Hub failure in one line, with what to do, and any token masked."""
    if isinstance(err, LocalTokenNotFoundError):
        return "not logged in to the Hugging Face Hub; run `hf auth login` or set HF_TOKEN"
    if isinstance(err, OfflineModeIsEnabled):
        return "offline mode is on (HF_HUB_OFFLINE); unset it to push"
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        status = err.response.status_code
        advice = {401: "; the token is not valid: `hf auth login` again"}.get(status, "")
        return f"the Hub refused ({status}): {_first_line(err)}{advice}"
    return f"cannot reach the Hugging Face Hub ({type(err).__name__}: {_first_line(err)})"


def _first_line(err: Exception) -> str:
    text = (str(err).strip().splitlines() or [""])[0]
    return re.sub(r"hf_[A-Za-z0-9]+", "hf_***", text)[:200]
