"""History events as plain dicts with the server-specific values normalised, and a readable
per-field diff of two such histories. Used by the differential attribute test.

Two servers running the same scenario legitimately differ in: wall-clock times, ids generated
at random (run ids, request ids, the uuid4 suffixes the tests put into workflow ids, task queue
names and update ids), and internal bookkeeping that is not part of the workflow's semantics.
Everything else, in particular every value the workflow or client gave (timeouts, retry
policies, payloads, failure messages), must be equal.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Tuple

from google.protobuf.json_format import MessageToDict
from temporalio.api.enums.v1 import ContinueAsNewInitiator

# Server bookkeeping dropped from every event (top-level HistoryEvent fields):
#   taskId  - the server's internal transfer/shard task sequence number: an implementation
#             detail that depends on everything else the server did, never the same twice.
#   version - the namespace failover version (multi-cluster replication); 0 on a local
#             namespace, so it is normally absent anyway; dropped so a server that writes a
#             non-zero constant is not reported.
DROPPED_EVENT_FIELDS = ("taskId", "version")

# Run ids and request ids are opaque values a server or client generates at random: they are
# replaced as a whole, whatever their format (a server is free to choose its run-id format).
# Worker and client identities ("pid@host") are not ids: both servers get them from this same
# test process, so they are compared as they are.

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
# A sticky task queue is named "<identity>-<uuid4 hex>" by the SDK (a fresh uuid per worker).
STICKY_SUFFIX_RE = re.compile(r"(?<=-)[0-9a-f]{32}$")

TIMESTAMP_TYPE = "google.protobuf.Timestamp"
CONTINUE_AS_NEW_BY_WORKFLOW = "CONTINUE_AS_NEW_INITIATOR_WORKFLOW"


def event_to_dict(event) -> Dict[str, Any]:
    """MessageToDict of the event, with every Timestamp field (wherever it is nested) turned
    into "<time>": two servers never record the same wall-clock instant."""
    plain = MessageToDict(event)
    _blank_timestamps(event, plain)
    return plain


def _blank_timestamps(message, plain: Dict[str, Any]) -> None:
    """Walk the message and its dict side by side, guided by the proto descriptors (so a
    workflow string that happens to look like a time is left alone)."""
    for field, value in message.ListFields():
        if field.message_type is None or field.json_name not in plain:
            continue
        key = field.json_name
        if field.message_type.full_name == TIMESTAMP_TYPE:
            plain[key] = "<time>"
        elif field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.message_type is not None:
                for map_key, item in value.items():
                    _blank_timestamps_in(item, plain[key].get(str(map_key)))
        elif field.is_repeated:
            for item, item_plain in zip(value, plain[key]):
                _blank_timestamps_in(item, item_plain)
        else:
            _blank_timestamps_in(value, plain[key])


def _blank_timestamps_in(message, plain: Any) -> None:
    # Well-known types (Duration, Struct, ...) are strings or scalars in the dict: nothing nested.
    if isinstance(plain, dict):
        _blank_timestamps(message, plain)


# The local-activity marker the SDK records carries the wall-clock times of the activity.
LOCAL_ACTIVITY_MARKER = "core_local_activity"
LOCAL_ACTIVITY_TIMES = ("complete_time", "original_schedule_time")


def normalise_server_computed(attributes_key: str, attributes: Dict[str, Any]) -> None:
    """Values the SDK or the server computes from the wall clock or from internal encodings,
    which legitimately differ between two servers. Only these; everything else is compared."""
    sdk_metadata = attributes.get("sdkMetadata", {})
    for flags in ("coreUsedFlags", "langUsedFlags"):
        # A set the SDK core keeps in a hash set: sent in an arbitrary order per worker.
        if flags in sdk_metadata:
            sdk_metadata[flags] = sorted(sdk_metadata[flags])
    if attributes_key == "workflowTaskStartedEventAttributes":
        _normalise_history_size(attributes)
    elif attributes_key == "workflowExecutionStartedEventAttributes":
        _normalise_continue_as_new_backoff(attributes)
    elif attributes_key == "markerRecordedEventAttributes":
        _normalise_local_activity_marker(attributes)


def _normalise_history_size(attributes: Dict[str, Any]) -> None:
    """historySizeBytes is the history's size as the server encodes it internally (the
    reference counts its persisted blobs, with taskId, version and other internal fields): not
    comparable between implementations. Only its presence and sign are."""
    size = attributes.get("historySizeBytes")
    if size is not None and int(size) > 0:
        attributes["historySizeBytes"] = "<size>"


def _normalise_continue_as_new_backoff(attributes: Dict[str, Any]) -> None:
    """After continue-as-new, the reference delays the new run's first task so runs start at
    least history.workflowIdReuseMinimalInterval (1 s) apart: the backoff is about that
    interval (with jitter) minus the old run's wall-clock duration, and absent if the old run
    took longer. So both its value and its presence depend on the wall clock; whether the
    chain was throttled at all is compared by chain_facts. (A workflow retry's backoff comes
    from the retry policy and is compared exactly.)"""
    if attributes.get("initiator") == CONTINUE_AS_NEW_BY_WORKFLOW:
        attributes["firstWorkflowTaskBackoff"] = "<wall-clock continue-as-new backoff>"


def chain_facts(runs: List[List[Any]]) -> Dict[str, Any]:
    """Facts about a whole chain of runs that single events do not show reliably: whether any
    run created by continue-as-new had its first workflow task delayed (see
    _normalise_continue_as_new_backoff; of three quick continue-as-new runs, the reference
    delays at least one)."""
    starts = [run[0].workflow_execution_started_event_attributes for run in runs]
    delayed = any(
        s.initiator == ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW
        and s.first_workflow_task_backoff.ToTimedelta().total_seconds() > 0 for s in starts)
    return {"continuedRunsDelayedByMinInterval": delayed}


def _normalise_local_activity_marker(attributes: Dict[str, Any]) -> None:
    """The SDK's local-activity marker holds its wall-clock complete and schedule times inside
    a JSON payload: parse it so that only those fields are blanked."""
    if attributes.get("markerName") != LOCAL_ACTIVITY_MARKER:
        return
    for payload in attributes.get("details", {}).get("data", {}).get("payloads", []):
        try:
            data = json.loads(payload.get("data", ""))
        except ValueError:
            continue
        if isinstance(data, dict):
            for field in LOCAL_ACTIVITY_TIMES:
                if data.get(field) is not None:
                    data[field] = "<time>"
            payload["data"] = data


class IdNormaliser:
    """Replaces random ids by placeholders numbered in order of first appearance, e.g.
    "<run-1>", "hello-<wf-1>". One instance per server per scenario, fed the runs in order,
    so the same id in two places gets the same placeholder, and placeholders line up between
    the two servers exactly when the ids are used in the same places."""

    def __init__(self) -> None:
        self._placeholders: Dict[str, str] = {}
        self._counts: Dict[str, int] = {}

    def _placeholder(self, value: str, kind: str, scope: str = "") -> str:
        """Numbering is per kind (and scope), so one id missing on one server renumbers only
        the ids of its own kind."""
        if value not in self._placeholders:
            counter = f"{scope}/{kind}"
            self._counts[counter] = self._counts.get(counter, 0) + 1
            self._placeholders[value] = f"<{kind}-{self._counts[counter]}>"
        return self._placeholders[value]

    def normalise(self, value: Any, key: str = "", scope: str = "") -> Any:
        """scope: the event's attributes key, e.g. "workflowTaskStartedEventAttributes"."""
        if isinstance(value, dict):
            return {k: self.normalise(v, k, scope or _attributes_scope(k))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.normalise(v, key, scope) for v in value]
        if not isinstance(value, str) or not value:
            return value
        if key == "runId" or key.endswith("RunId"):
            return self._placeholder(value, "run")
        if key == "requestId":
            # Unrelated random values per call: numbered per event type.
            return self._placeholder(value, "request", scope)
        # Ids embedded in longer strings: the uuid4 suffix of workflow ids, task queue names
        # and update ids (which the tests and the SDK generate afresh on each server).
        kind = _embedded_id_kind(key)
        value = UUID_RE.sub(lambda m: self._placeholder(m.group(0).lower(), kind), value)
        if kind == "tq":
            value = STICKY_SUFFIX_RE.sub(lambda m: self._placeholder(m.group(0), "sticky"), value)
        return value


def _attributes_scope(key: str) -> str:
    return key if key.endswith("EventAttributes") else ""


# Placeholder kind of a uuid by the key it first appears under; anything else is an "id".
EMBEDDED_ID_KINDS = {
    "workflowId": "wf",
    "name": "tq",  # in practice only task queue names hold uuids
    "normalName": "tq",
    "namespaceId": "ns",  # each server generates its namespace's id
    "protocolInstanceId": "update",  # update ids (the client's uuid4)
    "updateId": "update",
}


def _embedded_id_kind(key: str) -> str:
    return EMBEDDED_ID_KINDS.get(key, "id")


PAYLOAD_KEYS = {"metadata", "data", "externalPayloads"}


def decode_payloads(value: Any) -> Any:
    """Payload metadata and data are bytes (base64 in the dict); decode them to text so that a
    diff is readable and ids inside payloads get normalised too."""
    if isinstance(value, list):
        return [decode_payloads(v) for v in value]
    if not isinstance(value, dict):
        return value
    if isinstance(value.get("metadata"), dict) and set(value) <= PAYLOAD_KEYS:
        payload = dict(value)
        payload["metadata"] = {k: _b64_text(v) for k, v in value["metadata"].items()}
        if "data" in value:
            payload["data"] = _b64_text(value["data"])
        return payload
    return {k: decode_payloads(v) for k, v in value.items()}


def _b64_text(value: str) -> str:
    raw = base64.b64decode(value)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"<bytes {value}>"


@dataclass
class NormalisedChain:
    """One scenario on one server: chain_facts, and every run's events as normalised dicts."""
    facts: Dict[str, Any]
    runs: List[List[Dict[str, Any]]]


def normalise_chain(runs: List[List[Any]]) -> NormalisedChain:
    return NormalisedChain(chain_facts(runs), normalise_runs(runs))


def normalise_runs(runs: List[List[Any]]) -> List[List[Dict[str, Any]]]:
    """All runs of one scenario on one server, as normalised dicts."""
    ids = IdNormaliser()
    result = []
    for run in runs:
        events = []
        for event in run:
            plain = decode_payloads(event_to_dict(event))
            for name in DROPPED_EVENT_FIELDS:
                plain.pop(name, None)
            for key, attributes in plain.items():
                if key.endswith("EventAttributes"):
                    normalise_server_computed(key, attributes)
            events.append(ids.normalise(plain))
        result.append(events)
    return result


# --- diff -----------------------------------------------------------------------------------

# A field one side does not have (proto3 omits default values: not written, zero or empty).
ABSENT = "<absent>"


def flatten(value: Any, path: str = "") -> Iterator[Tuple[str, Any]]:
    """(dotted path, leaf value) pairs, e.g. ("activityTaskScheduledEventAttributes.
    retryPolicy.maximumAttempts", 5); list items as "payloads[0]"."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from flatten(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from flatten(v, f"{path}[{i}]")
    else:
        yield path, value


def event_differences(reference: Dict[str, Any], other: Dict[str, Any]
                      ) -> List[Tuple[str, Any, Any]]:
    """(path, reference value, other value) for every leaf that differs; a missing leaf is
    ABSENT (proto3 omits default values, so absent also means zero/empty)."""
    ref_leaves, other_leaves = dict(flatten(reference)), dict(flatten(other))
    paths = list(ref_leaves) + [p for p in other_leaves if p not in ref_leaves]
    return [(p, ref_leaves.get(p, ABSENT), other_leaves.get(p, ABSENT))
            for p in paths if ref_leaves.get(p, ABSENT) != other_leaves.get(p, ABSENT)]


def history_differences(reference_chain: NormalisedChain, other_chain: NormalisedChain
                        ) -> List[Tuple[str, str, Any, Any]]:
    """(where, path, reference value, other value) over the chain facts and all runs, where is
    e.g. "run 1 event 5 ActivityTaskScheduled". Events are paired by position."""
    found: List[Tuple[str, str, Any, Any]] = [
        ("whole chain", *d) for d in event_differences(reference_chain.facts, other_chain.facts)]
    reference, other = reference_chain.runs, other_chain.runs
    if len(reference) != len(other):
        found.append(("whole chain", "number of runs", len(reference), len(other)))
    for run_no, (ref_run, other_run) in enumerate(zip(reference, other), start=1):
        if len(ref_run) != len(other_run):
            found.append((f"run {run_no}", "number of events", len(ref_run), len(other_run)))
        for ref_event, other_event in zip(ref_run, other_run):
            where = f"run {run_no} event {ref_event.get('eventId', '?')} {_type(ref_event)}"
            found.extend((where, *d) for d in event_differences(ref_event, other_event))
    return found


def _type(event: Dict[str, Any]) -> str:
    name = str(event.get("eventType", "?")).removeprefix("EVENT_TYPE_")
    return "".join(part.capitalize() for part in name.split("_"))


def render_differences(differences: List[Tuple[str, str, Any, Any]], other_name: str) -> str:
    """One block per differing field: where, path, then both values."""
    return "\n".join(
        f"{where}: {path}\n    reference: {ref_value!r}\n    {other_name}: {other_value!r}"
        for where, path, ref_value, other_value in differences)
