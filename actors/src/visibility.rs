//! A run's visibility record, from its mutable state: what `ListWorkflowExecutions` lists and
//! filters on. The shards are to write it in the commit of every change it describes (start,
//! search-attribute and memo upserts, close), so a run is listable as soon as its start returns.

use std::collections::BTreeMap;

use prost::Message;
use sundial_engine::MutableState;
use sundial_engine::api::enums::v1::IndexedValueType;
use sundial_engine::search_attributes::{PREDEFINED, SearchAttributeTypes};
use sundial_storage::visibility::{IndexedValue, Timestamp, ValueType, VisibilityRow};

/// The visibility record of `state`'s run. `types` are its namespace's custom search
/// attributes; an attribute of no known type, or whose value does not decode as its type, is
/// kept in the record's payloads but not filterable.
pub fn visibility_row(state: &MutableState, types: &SearchAttributeTypes) -> VisibilityRow {
    let started = state.started.clone().unwrap_or_default();
    let millis = |ms: i64| Timestamp::from_unix_nanos(ms.saturating_mul(1_000_000));
    let closed = state.close_time_ms != 0;
    let execution_time_ms = if state.execution_time_ms != 0 {
        state.execution_time_ms
    } else {
        state.start_time_ms
    };
    let parent = started.parent_workflow_execution.clone();
    let root = started.root_workflow_execution.clone();
    let mut indexed = BTreeMap::new();
    if let Some(attributes) = &started.search_attributes {
        for (name, payload) in &attributes.indexed_fields {
            let Some(value_type) = value_type(name, types) else {
                continue;
            };
            if let Ok(Some(value)) = IndexedValue::decode(value_type, &payload.data) {
                indexed.insert(name.clone(), value);
            }
        }
    }
    VisibilityRow {
        namespace_id: state.namespace_id.clone(),
        run_id: state.run_id.clone(),
        workflow_id: state.workflow_id.clone(),
        workflow_type: started.workflow_type.map(|t| t.name).unwrap_or_default(),
        task_queue: started.task_queue.map(|q| q.name).unwrap_or_default(),
        status: state.status,
        start_time: millis(state.start_time_ms),
        execution_time: millis(execution_time_ms),
        close_time: closed.then(|| millis(state.close_time_ms)),
        execution_duration: closed.then(|| {
            (state.close_time_ms - execution_time_ms)
                .max(0)
                .saturating_mul(1_000_000)
        }),
        // Temporal records these figures at a close only; an open run has none.
        history_length: closed.then(|| state.next_event_id - 1),
        history_size_bytes: closed.then_some(state.history_size_bytes),
        // Every commit that changes the run moves its db_version on by one.
        state_transition_count: closed.then_some(state.db_version),
        parent_workflow_id: parent.as_ref().map(|p| p.workflow_id.clone()),
        parent_run_id: parent.as_ref().map(|p| p.run_id.clone()),
        root_workflow_id: root
            .as_ref()
            .map_or_else(|| state.workflow_id.clone(), |r| r.workflow_id.clone()),
        root_run_id: root.map_or_else(|| state.run_id.clone(), |r| r.run_id),
        memo: started.memo.map(|m| m.encode_to_vec()).unwrap_or_default(),
        search_attributes: started
            .search_attributes
            .map(|s| s.encode_to_vec())
            .unwrap_or_default(),
        indexed,
    }
}

/// The predefined attributes and a namespace's `custom` ones, by name, with the types a list
/// filter checks them against (system attributes are the parser's own).
pub fn attribute_types(custom: &SearchAttributeTypes) -> BTreeMap<String, ValueType> {
    PREDEFINED
        .iter()
        .map(|(name, _)| *name)
        .chain(custom.keys().map(String::as_str))
        .filter_map(|name| Some((name.to_string(), value_type(name, custom)?)))
        .collect()
}

/// The type of a predefined or custom attribute.
fn value_type(name: &str, custom: &SearchAttributeTypes) -> Option<ValueType> {
    let indexed = match custom.get(name) {
        Some(t) => IndexedValueType::try_from(*t).ok()?,
        None => PREDEFINED.iter().find(|(n, _)| *n == name)?.1,
    };
    filter_type(indexed)
}

/// The type a filter compares values of an attribute of `indexed` type as.
pub fn filter_type(indexed: IndexedValueType) -> Option<ValueType> {
    Some(match indexed {
        IndexedValueType::Bool => ValueType::Bool,
        IndexedValueType::Int => ValueType::Int,
        IndexedValueType::Double => ValueType::Double,
        IndexedValueType::Datetime => ValueType::Datetime,
        IndexedValueType::Keyword => ValueType::Keyword,
        IndexedValueType::KeywordList => ValueType::KeywordList,
        IndexedValueType::Text => ValueType::Text,
        IndexedValueType::Unspecified => return None,
    })
}

#[cfg(test)]
mod tests {
    use sundial_engine::api::common::v1::{
        Memo, Payload, SearchAttributes, WorkflowExecution, WorkflowType,
    };
    use sundial_engine::api::history::v1::WorkflowExecutionStartedEventAttributes;
    use sundial_engine::api::taskqueue::v1::TaskQueue;

    use super::*;

    fn json(data: &str) -> Payload {
        Payload {
            data: data.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn state() -> MutableState {
        let attributes = [
            ("CustomerId", json(r#""c-17""#)),
            ("Priority", json("3")),
            ("BuildIds", json(r#"["b1"]"#)),
            ("Removed", json("null")),
            ("Unregistered", json(r#""x""#)),
            ("Garbled", json("{")),
        ];
        MutableState {
            namespace_id: "ns".into(),
            workflow_id: "order-1".into(),
            run_id: "run-1".into(),
            status: 1,
            next_event_id: 6,
            start_time_ms: 1_000,
            execution_time_ms: 4_000,
            history_size_bytes: 512,
            db_version: 3,
            started: Some(WorkflowExecutionStartedEventAttributes {
                workflow_type: Some(WorkflowType {
                    name: "Checkout".into(),
                }),
                task_queue: Some(TaskQueue {
                    name: "payments".into(),
                    ..Default::default()
                }),
                parent_workflow_execution: Some(WorkflowExecution {
                    workflow_id: "parent".into(),
                    run_id: "parent-run".into(),
                }),
                memo: Some(Memo {
                    fields: [("note".to_string(), json(r#""hi""#))].into(),
                }),
                search_attributes: Some(SearchAttributes {
                    indexed_fields: attributes
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn types() -> SearchAttributeTypes {
        [
            ("CustomerId", IndexedValueType::Keyword),
            ("Priority", IndexedValueType::Int),
            ("Removed", IndexedValueType::Keyword),
            ("Garbled", IndexedValueType::Text),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t as i32))
        .collect()
    }

    #[test]
    fn an_open_run_is_recorded_with_its_attributes_typed() {
        let row = visibility_row(&state(), &types());
        assert_eq!(
            (row.workflow_id.as_str(), row.run_id.as_str()),
            ("order-1", "run-1")
        );
        assert_eq!(
            (row.workflow_type.as_str(), row.task_queue.as_str()),
            ("Checkout", "payments")
        );
        assert_eq!(
            (row.status, row.close_time, row.execution_duration),
            (1, None, None)
        );
        assert_eq!(row.start_time, Timestamp::from_unix_nanos(1_000_000_000));
        assert_eq!(
            row.execution_time,
            Timestamp::from_unix_nanos(4_000_000_000)
        );
        // The figures of a close only.
        assert_eq!((row.history_length, row.history_size_bytes), (None, None));
        assert_eq!(row.state_transition_count, None);
        assert_eq!(row.parent_workflow_id.as_deref(), Some("parent"));
        assert_eq!(row.parent_run_id.as_deref(), Some("parent-run"));
        // A run started without a root is its own.
        assert_eq!(
            (row.root_workflow_id.as_str(), row.root_run_id.as_str()),
            ("order-1", "run-1")
        );
        assert!(!row.memo.is_empty() && !row.search_attributes.is_empty());
        // Predefined (BuildIds) and custom attributes are typed; a removed one (null), one of
        // no known type and one that does not decode are not filterable.
        let names: Vec<_> = row.indexed.keys().map(String::as_str).collect();
        assert_eq!(names, ["BuildIds", "CustomerId", "Priority"]);
        assert_eq!(row.indexed["Priority"], IndexedValue::Int(3));
        assert_eq!(
            row.indexed["BuildIds"],
            IndexedValue::KeywordList(vec!["b1".into()])
        );
    }

    #[test]
    fn a_closed_run_has_its_close_time_and_duration_from_execution_time() {
        let mut closed = state();
        closed.status = 2;
        closed.close_time_ms = 10_000;
        let row = visibility_row(&closed, &types());
        assert_eq!(
            row.close_time,
            Some(Timestamp::from_unix_nanos(10_000_000_000))
        );
        assert_eq!(row.execution_duration, Some(6_000_000_000));
        assert_eq!(
            (row.history_length, row.history_size_bytes),
            (Some(5), Some(512))
        );
        assert_eq!(row.state_transition_count, Some(3));
        // No execution time recorded: the start time stands for it.
        closed.execution_time_ms = 0;
        let row = visibility_row(&closed, &types());
        assert_eq!(row.execution_time, row.start_time);
        assert_eq!(row.execution_duration, Some(9_000_000_000));
    }
}
