//! Search-attribute names: the system attributes Temporal keeps for itself, the predefined ones
//! a workflow may set, and the custom ones a namespace registered (`SearchAttributeTypes`), with
//! Temporal's SQL-visibility layout of custom attributes as aliases of preallocated fields
//! (`Keyword01` → `CustomerId`).

use std::collections::BTreeMap;

use temporalio_protos::temporal::api::{common::v1::SearchAttributes, enums::v1::IndexedValueType};

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
