"""DELETE of a study, series or instance over DICOMweb, for a viewer's admin actions.

PS3.18 defines no delete transaction; this follows what DICOMweb servers and clients do
(dicomweb-client's ``delete_study`` / ``delete_series`` / ``delete_instance``): ``DELETE`` on
the study, series or instance resource removes every instance below it and answers
204 No Content.

It is off unless the service was created with ``allow_delete`` (``create_app(allow_delete=True)``,
``pacscore serve web --allow-delete``): a DELETE is then a 405 that says how to enable it. When
on, it runs behind the same ``auth`` hook as every request (401 without valid credentials), and
``allow_delete`` may be a ``callable(headers) -> bool`` that decides per request whether the
authenticated client may delete (403 when it says no), so reading and deleting can need
different credentials. UIDs that are not stored, or that do not agree (a series of another
study), are a 404 and nothing is removed.

The removal is ``Archive.delete``: one write transaction takes the index entries out and
journals their blobs, which are discarded only after the commit, so a crash never leaves an
entry without its blob (at worst orphan blobs, removed at the next open); the archive's
``on_deleted`` hooks fire for each removed instance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from .web_http import HttpError, WebRequest, WebResponse
from .web_wado import instance_refs

LOG = logging.getLogger("pacscore.dicomweb")

#: ``allow_delete`` of the service: off, on, or a per-request permission check
DeletePolicy = bool | Callable[[Mapping[str, str]], bool]


def check_policy(policy: object) -> DeletePolicy:
    """``policy`` if it is a valid ``allow_delete`` value (a bool or a callable), else TypeError."""
    if isinstance(policy, bool) or callable(policy):
        return policy
    raise TypeError(f"allow_delete must be True, False or a callable(headers) -> bool, not {policy!r}")


def permitted(policy: DeletePolicy, request: WebRequest) -> None:
    """405 when deleting is off, 403 when the policy refuses this request, else nothing."""
    if policy is False:
        raise HttpError(
            405,
            "DELETE is not enabled on this server (create_app(allow_delete=True) or pacscore serve web --allow-delete)",
            [("Allow", "GET, POST")],
        )
    if policy is True:
        return
    try:
        allowed = policy(request.headers)
    except Exception:
        LOG.exception("the allow_delete hook failed")
        raise HttpError(500, "the delete permission hook failed") from None
    if allowed is not True:
        raise HttpError(403, "these credentials may not delete")


def delete(
    service, request: WebRequest, study: str, series: str | None = None, instance: str | None = None
) -> WebResponse:
    """Remove the study, series or instance the path names; 204 when done."""
    permitted(service.allow_delete, request)
    refs = instance_refs(service, study, series, instance)
    archive = service.archive
    if instance is not None:
        removed = archive.delete(instance=instance)
    elif series is not None:
        removed = archive.delete(series=series)
    else:
        removed = archive.delete(study=study)
    LOG.info("DELETE %s: %d of %d instance(s) removed", instance or series or study, removed, len(refs))
    return WebResponse(204, [], b"")


__all__ = ["delete", "permitted", "check_policy", "DeletePolicy"]
