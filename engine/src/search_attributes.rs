//! Search-attribute names: the system attributes Temporal keeps for itself, the predefined ones
//! a workflow may set, and the custom ones a namespace registered (`SearchAttributeTypes`), with
//! Temporal's SQL-visibility layout of custom attributes as aliases of preallocated fields
//! (`Keyword01` → `CustomerId`).

use std::collections::BTreeMap;

use temporalio_protos::temporal::api::{
    common::v1::{Payload, SearchAttributes, WorkerVersionStamp},
    enums::v1::IndexedValueType,
};

/// The custom search attributes of one namespace: name → `IndexedValueType` wire value.
pub type SearchAttributeTypes = BTreeMap<String, i32>;

/// Attributes the server maintains; a workflow may not set them.
pub const SYSTEM: &[&str] = &[
    "WorkflowId",
    "RunId",
    "WorkflowType",
    "StartTime",
    "ExecutionTime",
    "CloseTime",
    "ExecutionStatus",
    "TaskQueue",
    "HistoryLength",
    "ExecutionDuration",
    "StateTransitionCount",
    "HistorySizeBytes",
    "ParentWorkflowId",
    "ParentRunId",
    "RootWorkflowId",
    "RootRunId",
];

/// Predefined attributes (Temporal's, with their types) that workflows and SDKs may set.
pub const PREDEFINED: &[(&str, IndexedValueType)] = &[
    ("TemporalChangeVersion", IndexedValueType::KeywordList),
    ("BinaryChecksums", IndexedValueType::KeywordList),
    ("BuildIds", IndexedValueType::KeywordList),
    ("BatcherNamespace", IndexedValueType::Keyword),
    ("BatcherUser", IndexedValueType::Keyword),
    ("TemporalScheduledStartTime", IndexedValueType::Datetime),
    ("TemporalScheduledById", IndexedValueType::Keyword),
    ("TemporalSchedulePaused", IndexedValueType::Bool),
    ("TemporalNamespaceDivision", IndexedValueType::Keyword),
    ("TemporalPauseInfo", IndexedValueType::KeywordList),
    ("TemporalReportedProblems", IndexedValueType::KeywordList),
    ("TemporalExternalPayloadCount", IndexedValueType::Int),
    ("TemporalExternalPayloadSizeBytes", IndexedValueType::Int),
    ("TemporalWorkerDeployment", IndexedValueType::Keyword),
    ("TemporalWorkerDeploymentVersion", IndexedValueType::Keyword),
    (
        "TemporalWorkflowVersioningBehavior",
        IndexedValueType::Keyword,
    ),
    (
        "TemporalUsedWorkerDeploymentVersions",
        IndexedValueType::KeywordList,
    ),
];

/// The predefined attribute of the builds that completed a run's workflow tasks.
pub const BUILD_IDS: &str = "BuildIds";

/// The strings of a KeywordList payload (none for one that does not decode).
pub fn keyword_list(payload: &Payload) -> Vec<String> {
    serde_json::from_slice(&payload.data).unwrap_or_default()
}

/// A KeywordList payload, as Temporal encodes one.
pub fn keyword_list_payload(values: &[String]) -> Payload {
    Payload {
        metadata: [
            ("encoding".to_string(), b"json/plain".to_vec()),
            ("type".to_string(), b"KeywordList".to_vec()),
        ]
        .into(),
        data: serde_json::to_vec(values).unwrap_or_default(),
        ..Default::default()
    }
}

/// Adds the build of a completed workflow task to `attributes`' `BuildIds` (see
/// [`with_build_id`]); true when they changed. The live path and the fold of history both call
/// it, on each workflow task completion, so a reset or a reload arrives at the same list.
pub fn add_build_id(
    attributes: &mut Option<SearchAttributes>,
    stamp: Option<&WorkerVersionStamp>,
) -> bool {
    let existing = attributes
        .as_ref()
        .and_then(|a| a.indexed_fields.get(BUILD_IDS))
        .map(keyword_list)
        .unwrap_or_default();
    let updated = with_build_id(&existing, stamp);
    if updated == existing {
        return false;
    }
    attributes
        .get_or_insert_with(Default::default)
        .indexed_fields
        .insert(BUILD_IDS.into(), keyword_list_payload(&updated));
    true
}

/// A run's search attributes as a new run (continued as new, retried, cron) inherits them:
/// without `BuildIds`, which belong to the builds that ran the old run (as on Temporal).
pub fn without_build_ids(attributes: Option<SearchAttributes>) -> Option<SearchAttributes> {
    attributes.and_then(|mut a| {
        a.indexed_fields.remove(BUILD_IDS);
        (!a.indexed_fields.is_empty()).then_some(a)
    })
}

/// `BuildIds` after a workflow task completed by the worker of `stamp`, as Temporal computes
/// them: `unversioned` first for a worker that does not use versioning, then the other values
/// kept in order, then the worker's (`unversioned:<id>` or `versioned:<id>`) if new.
pub fn with_build_id(existing: &[String], stamp: Option<&WorkerVersionStamp>) -> Vec<String> {
    const UNVERSIONED: &str = "unversioned";
    let versioned = stamp.is_some_and(|s| s.use_versioning);
    let build = stamp.map(|s| match (s.build_id.as_str(), s.use_versioning) {
        ("", _) => UNVERSIONED.to_string(),
        (id, true) => format!("versioned:{id}"),
        (id, false) => format!("{UNVERSIONED}:{id}"),
    });
    let mut values = Vec::new();
    if !versioned {
        values.push(UNVERSIONED.to_string());
    }
    let sentinel =
        |v: &str| v == UNVERSIONED || v.starts_with("assigned:") || v.starts_with("pinned:");
    values.extend(existing.iter().filter(|v| !sentinel(v)).cloned());
    if let Some(build) = build.filter(|b| !existing.contains(b) && !values.contains(b)) {
        values.push(build);
    }
    values
}

/// Preallocated fields per type in Temporal's SQL visibility (how many custom attributes of
/// each type a namespace may have).
pub const FIELDS_PER_TYPE: &[(IndexedValueType, usize)] = &[
    (IndexedValueType::Bool, 3),
    (IndexedValueType::Int, 3),
    (IndexedValueType::Double, 3),
    (IndexedValueType::Datetime, 3),
    (IndexedValueType::Keyword, 10),
    (IndexedValueType::KeywordList, 3),
    (IndexedValueType::Text, 3),
];

/// The name Temporal gives a type in field names and payload metadata (`KeywordList`).
pub fn type_name(value_type: IndexedValueType) -> &'static str {
    match value_type {
        IndexedValueType::Text => "Text",
        IndexedValueType::Keyword => "Keyword",
        IndexedValueType::Int => "Int",
        IndexedValueType::Double => "Double",
        IndexedValueType::Bool => "Bool",
        IndexedValueType::Datetime => "Datetime",
        IndexedValueType::KeywordList => "KeywordList",
        IndexedValueType::Unspecified => "Unspecified",
    }
}

/// The type of a preallocated field name (`Keyword03` → Keyword).
pub fn field_type(field: &str) -> Option<IndexedValueType> {
    let digits = field.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let prefix = &field[..field.len() - digits.len()];
    if digits.len() != 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    FIELDS_PER_TYPE
        .iter()
        .map(|(t, _)| *t)
        .find(|t| type_name(*t) == prefix)
}

/// True for a name the server reserves (system attributes).
pub fn is_system(name: &str) -> bool {
    SYSTEM.contains(&name)
}

/// Checks the names (and declared value types) of search attributes a start or an upsert sets
/// against the namespace's `custom` ones; the message is Temporal's.
pub fn check_names(
    attributes: Option<&SearchAttributes>,
    custom: &SearchAttributeTypes,
    namespace: &str,
) -> Result<(), String> {
    let Some(attributes) = attributes else {
        return Ok(());
    };
    for (name, value) in &attributes.indexed_fields {
        if is_system(name) {
            return Err(format!("{name} attribute can't be set in SearchAttributes"));
        }
        let known = custom.get(name).copied().or_else(|| {
            PREDEFINED
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| *t as i32)
        });
        let Some(value_type) = known else {
            return Err(format!(
                "Namespace {namespace} has no mapping defined for search attribute {name}"
            ));
        };
        let value_type = IndexedValueType::try_from(value_type).unwrap_or_default();
        // A value that names its type must name this one.
        if let Some(declared) = value.metadata.get("type") {
            let declared = String::from_utf8_lossy(declared);
            if !declared.is_empty() && declared != type_name(value_type) {
                return Err(format!(
                    "invalid value for search attribute {name} of type {}: {}",
                    type_name(value_type),
                    String::from_utf8_lossy(&value.data)
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_ids_gain_the_sentinel_and_each_new_build_as_temporal_adds_them() {
        let stamp = |id: &str| WorkerVersionStamp {
            build_id: id.into(),
            use_versioning: false,
        };
        let first = with_build_id(&[], Some(&stamp("b1")));
        assert_eq!(first, ["unversioned", "unversioned:b1"]);
        assert_eq!(with_build_id(&first, Some(&stamp("b1"))), first);
        assert_eq!(
            with_build_id(&first, Some(&stamp("b2"))),
            ["unversioned", "unversioned:b1", "unversioned:b2"]
        );
        assert_eq!(with_build_id(&[], None), ["unversioned"]);
        let payload = keyword_list_payload(&first);
        assert_eq!(keyword_list(&payload), first);
    }
    use temporalio_protos::temporal::api::common::v1::Payload;

    fn attrs(pairs: &[(&str, &str)]) -> SearchAttributes {
        SearchAttributes {
            indexed_fields: pairs
                .iter()
                .map(|(k, t)| {
                    let mut p = Payload::default();
                    p.metadata.insert("type".into(), t.as_bytes().to_vec());
                    (k.to_string(), p)
                })
                .collect(),
        }
    }

    #[test]
    fn names_are_checked_against_the_namespace() {
        let custom = SearchAttributeTypes::from([(
            "CustomerId".to_string(),
            IndexedValueType::Keyword as i32,
        )]);
        assert_eq!(
            check_names(Some(&attrs(&[("CustomerId", "Keyword")])), &custom, "ns"),
            Ok(())
        );
        assert_eq!(
            check_names(Some(&attrs(&[("BuildIds", "KeywordList")])), &custom, "ns"),
            Ok(())
        );
        assert_eq!(
            check_names(Some(&attrs(&[("Missing", "Keyword")])), &custom, "ns"),
            Err("Namespace ns has no mapping defined for search attribute Missing".into())
        );
        assert_eq!(
            check_names(Some(&attrs(&[("WorkflowId", "Keyword")])), &custom, "ns"),
            Err("WorkflowId attribute can't be set in SearchAttributes".into())
        );
        assert!(check_names(Some(&attrs(&[("CustomerId", "Int")])), &custom, "ns").is_err());
        assert_eq!(check_names(None, &custom, "ns"), Ok(()));
    }

    #[test]
    fn field_names_carry_their_type() {
        assert_eq!(field_type("Keyword01"), Some(IndexedValueType::Keyword));
        assert_eq!(
            field_type("KeywordList03"),
            Some(IndexedValueType::KeywordList)
        );
        assert_eq!(field_type("Int1"), None);
        assert_eq!(field_type("Nope01"), None);
    }
}
