"""Uploading a converted folder to the Hugging Face Hub as a dataset repository."""

from __future__ import annotations

import os

import huggingface_hub


def push_to_hub(output: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Upload a converted folder as a Hub dataset repository; return the commit URL."""
    api = huggingface_hub.HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(output),
                             commit_message="Upload FOCUS converted by focus-dataset")
    return str(info)
