"""The Hugging Face cache and offline mode, read at call time, and one message for missing weights.

Every model source that keeps weights on the Hub (timm's tags and ``hf-hub:`` repos, open_clip,
transformers) finds them here: in the local cache first, downloaded only when HF_HUB_OFFLINE is
unset, and otherwise an error that says how to fetch them. A revision is a branch, a tag or a commit
(never a path: huggingface_hub reads ``refs/<revision>``), and every folder and file found lies inside
the cache once its links are followed (a refs file or a link could point anywhere).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import huggingface_hub.errors

from focus_common import network
from focus_common.messages import quote
from harness.models.identity import WeightsIdentityError

# A branch or a tag (git's rules, kept simple: no '..', no part starting with '.', no leading, trailing or doubled
# '/'), which covers a 40-hex commit too.
REVISION = re.compile(r"(?!.*\.\.)[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights that are neither in the local cache nor downloadable."""


def offline() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, read now (focus_common.network.hub_offline)."""
    return network.hub_offline()


def cache_dir() -> Path:
    """The Hugging Face hub cache, with huggingface_hub's precedence (HF_HUB_CACHE, then HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(huggingface_hub.constants.HF_HUB_CACHE)


def split_revision(repo: str) -> tuple[str, str | None]:
    """``org/name@rev`` as (repo id, revision or None); a revision that is not a branch, a tag or a commit is refused.

    >>> split_revision("timm/resnet50.a1_in1k@main"), split_revision("timm/vit")
    (('timm/resnet50.a1_in1k', 'main'), ('timm/vit', None))
    """
    repo_id, at, revision = repo.partition("@")
    if at and not REVISION.fullmatch(revision):
        raise ValueError(f"{repo}: the revision {quote(revision)} is not a branch, a tag or a commit: letters, digits, "
                         f"'.', '_', '-' and '/' (no '..', no leading '/'), or 40 hex digits")
    return repo_id, revision or None


def repo_folder(repo_id: str) -> Path:
    """Where the cache keeps a model repo: ``models--ORG--NAME``."""
    return cache_dir() / f"models--{repo_id.replace('/', '--')}"


def inside_cache(path: Path, repo_id: str) -> Path:
    """`path` (a snapshot folder, or a file in one) when it lies in the cache once its links are followed."""
    root, resolved = cache_dir().resolve(), path.resolve()
    if not resolved.is_relative_to(root):
        raise WeightsIdentityError(
            f"{path}, of the Hugging Face repo {repo_id}, leads to {resolved}, outside the cache {root}: a refs file "
            f"or a link in the cache points out of it. Delete {repo_folder(repo_id)} and fetch the repo again.")
    return path


def not_found(what: str, reason: str, repo_id: str, files: Sequence[str], alternative: str,
              revision: str | None = None) -> WeightsNotFoundError:
    """The one message for weights that are missing: what, why, where we looked, how to get them."""
    at_revision = f" at revision {revision}" if revision else ""
    return WeightsNotFoundError(
        f"{what} not found: {reason}. Looked for {' or '.join(files)} of the Hugging Face repo "
        f"{repo_id}{at_revision} in the cache {cache_dir()}. To provide them: run `hf download {repo_id}` "
        f"on a machine with network and copy its Hugging Face cache here (set HF_HOME or HF_HUB_CACHE to "
        f"it), or {alternative}."
    )


def cached_file(repo_id: str, filename: str, revision: str | None = None) -> Path | None:
    """The cached copy of one file of a Hub repo, or None."""
    cached = huggingface_hub.try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir(), revision=revision)
    # None or a "known missing" sentinel when it is not a path
    return inside_cache(Path(cached), repo_id) if isinstance(cached, str) else None


def fetch_file(repo_id: str, files: Sequence[str], *, what: str, alternative: str,
               revision: str | None = None) -> Path:
    """The first of `files` that the repo holds: from the cache, else downloaded unless offline."""
    for filename in files:
        if (cached := cached_file(repo_id, filename, revision)) is not None:
            return cached
    if offline():
        raise not_found(what, "not in the local cache and HF_HUB_OFFLINE is set", repo_id, files, alternative,
                        revision)
    if (why := network.hub_unreachable()) is not None:  # at once, not after huggingface_hub's five retries
        raise not_found(what, f"not in the local cache, and the Hugging Face Hub cannot be reached ({why}); "
                        f"{network.OFFLINE_ADVICE}", repo_id, files, alternative, revision)
    for filename in files:
        try:
            return inside_cache(Path(huggingface_hub.hf_hub_download(repo_id, filename, revision=revision,
                                                                     cache_dir=cache_dir())), repo_id)
        except huggingface_hub.errors.LocalEntryNotFoundError as error:  # no network
            raise not_found(what, f"not cached, and the download failed ({error}); set HF_HUB_OFFLINE=1 on "
                            "machines without network to fail at once", repo_id, files, alternative,
                            revision) from error
        except huggingface_hub.errors.EntryNotFoundError:
            continue  # the repo holds another of the candidate names
        except (huggingface_hub.errors.HfHubHTTPError, OSError) as error:
            raise not_found(what, f"not cached, and the download failed ({error})", repo_id, files, alternative,
                            revision) from error
    raise not_found(what, "the Hub repo holds none of the expected files", repo_id, files, alternative, revision)


def fetch_snapshot(repo: str, patterns: Sequence[str], *, what: str, alternative: str) -> Path:
    """A local folder holding the repo's files that match `patterns` (config, weights, processor).

    From the cache, else downloaded unless offline; the folder is huggingface_hub's snapshot folder,
    which libraries read like a model saved locally. It and every file in it lie inside the cache.
    """
    repo_id, revision = split_revision(repo)
    # Without the Hub (offline, or unreachable: asked at once, not after huggingface_hub's five retries) the
    # cache alone answers.
    why = None if offline() else network.hub_unreachable()
    try:
        folder = huggingface_hub.snapshot_download(repo_id, revision=revision, allow_patterns=list(patterns),
                                                   cache_dir=cache_dir(), local_files_only=offline() or bool(why))
    except huggingface_hub.errors.LocalEntryNotFoundError as error:
        reason = ("not in the local cache and HF_HUB_OFFLINE is set" if offline()
                  else f"not in the local cache, and the Hugging Face Hub cannot be reached ({why}); "
                       f"{network.OFFLINE_ADVICE}" if why
                  else f"not cached, and the download failed ({error})")
        raise not_found(what, reason, repo_id, patterns, alternative, revision) from error
    except (huggingface_hub.errors.HfHubHTTPError, OSError, ValueError) as error:
        raise not_found(what, f"not cached, and the download failed ({error})", repo_id, patterns, alternative,
                        revision) from error
    folder = inside_cache(Path(folder), repo_id)
    for path in folder.rglob("*"):
        inside_cache(path, repo_id)
    return folder
