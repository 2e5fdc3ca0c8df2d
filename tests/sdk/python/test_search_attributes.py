"""Search attributes, with the same assertions (and messages) on the reference server and on
the target: registering them (OperatorService), listing them, and the checks on starts."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from helpers import connect_either, unique, within
from sundial_workflows import WaitForeverWorkflow

KEYWORD = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
INT = IndexedValueType.INDEXED_VALUE_TYPE_INT


@pytest.mark.parametrize("kind", ["reference", "target"])
async def test_register_list_and_check(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)

    async def add(attributes) -> None:
        await within(client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace="default", search_attributes=attributes)))

    async def refused(call, message: str) -> None:
        with pytest.raises(RPCError) as err:
            await within(call)
        assert (err.value.status, err.value.message) == (RPCStatusCode.INVALID_ARGUMENT, message)

    await add({"OrderId": KEYWORD, "Quantity": INT})
    await add({"OrderId": KEYWORD})  # again: nothing to do
    await refused(add({"WorkflowId": KEYWORD}), "Search attribute WorkflowId is reserved by system.")
    await refused(add({}), "SearchAttributes are not set on request.")
    listed = await within(client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")))
    assert listed.custom_attributes["OrderId"] == KEYWORD
    assert listed.custom_attributes["Quantity"] == INT
    assert listed.system_attributes["WorkflowId"] == KEYWORD

    def start(key, value):
        return client.start_workflow(
            WaitForeverWorkflow.run, id=unique("sa"), task_queue=unique("no-worker"),
            search_attributes=TypedSearchAttributes([SearchAttributePair(key, value)]))

    await refused(start(SearchAttributeKey.for_keyword("NotRegistered"), "x"),
                  "Namespace default has no mapping defined for search attribute NotRegistered")
    await refused(start(SearchAttributeKey.for_keyword("WorkflowId"), "x"),
                  "WorkflowId attribute can't be set in SearchAttributes")
    await refused(start(SearchAttributeKey.for_int("OrderId"), 5),
                  "invalid value for search attribute OrderId of type Keyword: 5")
    handle = await within(start(SearchAttributeKey.for_keyword("OrderId"), "o-1"))
    described = await within(handle.describe())
    assert described.typed_search_attributes.get(SearchAttributeKey.for_keyword("OrderId")) == "o-1"
    await within(handle.terminate(reason="done"))


@pytest.mark.parametrize("kind", ["reference", "target"])
async def test_start_dev_registers_search_attributes(kind, workdir):
    """`server start-dev --search-attribute KEY=TYPE`, as the temporal CLI takes it."""
    import harness

    kind = "reference" if kind == "reference" else harness.target()
    srv = harness.ServerProcess(kind, workdir, unique(f"sa-flag-{kind}"), extra_args=[
        "--search-attribute", "Color=Keyword", "--search-attribute", "Size=Int"])
    await srv.astart()
    try:
        from temporalio.client import Client

        client = await within(Client.connect(srv.address, namespace="default"))
        listed = await within(client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")))
        assert (listed.custom_attributes["Color"], listed.custom_attributes["Size"]) == \
            (KEYWORD, INT)
    finally:
        srv.stop()
