//! Visibility's RPCs: list, count and scan a namespace's runs with Temporal's list-filter
//! language, answered from the store's visibility records. The shards write a run's record in
//! the commit of the change it describes, so what these answer is never behind the run.

use prost_wkt_types::Duration as ProtoDuration;
use sundial_actors::visibility::attribute_types;
use sundial_engine::api::common::v1::{Memo, Payload, SearchAttributes, WorkflowType};
use sundial_engine::api::enums::v1::IndexedValueType;
use sundial_engine::api::filter::v1::StartTimeFilter;
use sundial_engine::search_attributes::{FIELDS_PER_TYPE, PREDEFINED, type_name};
use sundial_storage::visibility::{
    self, Attribute, CompareOp, Filter, GroupValue, Query, SYSTEM_ATTRIBUTES, Timestamp, Value,
    ValueType, VisibilityCursor, VisibilityRow,
};

use super::*;

/// The most runs one page lists, and the size of a page that asks for none (Temporal's
/// `frontend.visibilityMaxPageSize`).
const MAX_PAGE_SIZE: i32 = 1000;

/// The first byte of a page token: its layout's version.
const PAGE_TOKEN_VERSION: u8 = 1;

/// A page asked for: which runs, from where, how many.
struct PageRequest<'a> {
    namespace: &'a str,
    filter: Option<Filter>,
    page_size: i32,
    next_page_token: &'a [u8],
}

/// A page of runs and the token of the next, empty after the last page.
struct Page {
    executions: Vec<WorkflowExecutionInfo>,
    next_page_token: Vec<u8>,
}

impl Frontend {
    /// Parses a list or count query against the namespace's search attributes. A query that
    /// does not name `TemporalNamespaceDivision` lists only runs without one, as Temporal's.
    async fn visibility_query(&self, namespace: &str, query: &str) -> Result<Query, Status> {
        if namespace.is_empty() {
            return Err(invalid("Namespace is not set on request."));
        }
        crate::telemetry::note_namespace(namespace);
        let entry = self
            .node
            .namespaces
            .get(namespace)
            .await
            .map_err(to_status)?;
        let types = attribute_types(&entry.search_attributes());
        let mut parsed =
            visibility::parse(query, &types).map_err(|e| invalid(format!("invalid query: {e}")))?;
        if !parsed.names_namespace_division {
            let division = Filter::IsNull {
                attribute: attribute("TemporalNamespaceDivision", ValueType::Keyword),
                negated: false,
            };
            parsed.filter = Some(and(parsed.filter.take(), division));
        }
        Ok(parsed)
    }

    /// A list query's filter: a `GROUP BY` is for counts only.
    pub(super) async fn list_filter(
        &self,
        namespace: &str,
        query: &str,
    ) -> Result<Option<Filter>, Status> {
        let parsed = self.visibility_query(namespace, query).await?;
        if parsed.group_by.is_some() {
            return Err(invalid(
                "invalid query: operation is not supported: 'GROUP BY' clause",
            ));
        }
        Ok(parsed.filter)
    }

    async fn list_page(&self, request: PageRequest<'_>) -> Result<Page, Status> {
        let namespace_id = self.namespace_id(request.namespace).await?;
        let after = decode_page_token(request.next_page_token)?;
        let page_size = if request.page_size <= 0 || request.page_size > MAX_PAGE_SIZE {
            MAX_PAGE_SIZE
        } else {
            request.page_size
        } as usize;
        // One run more than the page says whether another page follows.
        let mut rows = self
            .node
            .history
            .store
            .list_visibility(
                &namespace_id,
                request.filter.as_ref(),
                after.as_ref(),
                page_size + 1,
            )
            .await
            .map_err(|e| to_status(e.into()))?;
        let next_page_token = if rows.len() > page_size {
            rows.truncate(page_size);
            rows.last()
                .map(|row| encode_page_token(&row.cursor()))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(Page {
            executions: rows.iter().map(execution_info).collect(),
            next_page_token,
        })
    }

    pub(super) async fn list_runs(
        &self,
        req: ListWorkflowExecutionsRequest,
    ) -> Result<ListWorkflowExecutionsResponse, Status> {
        let filter = self.list_filter(&req.namespace, &req.query).await?;
        let page = self
            .list_page(PageRequest {
                namespace: &req.namespace,
                filter,
                page_size: req.page_size,
                next_page_token: &req.next_page_token,
            })
            .await?;
        Ok(ListWorkflowExecutionsResponse {
            executions: page.executions,
            next_page_token: page.next_page_token,
        })
    }

    /// Scan is List under another name (Temporal rewrites it so).
    pub(super) async fn scan_runs(
        &self,
        req: ScanWorkflowExecutionsRequest,
    ) -> Result<ScanWorkflowExecutionsResponse, Status> {
        let listed = self
            .list_runs(ListWorkflowExecutionsRequest {
                namespace: req.namespace,
                page_size: req.page_size,
                next_page_token: req.next_page_token,
                query: req.query,
            })
            .await?;
        Ok(ScanWorkflowExecutionsResponse {
            executions: listed.executions,
            next_page_token: listed.next_page_token,
        })
    }

    /// The older typed listing of open runs: running, started in the time filter's range, of
    /// one workflow id or type.
    pub(super) async fn list_open_runs(
        &self,
        req: ListOpenWorkflowExecutionsRequest,
    ) -> Result<ListOpenWorkflowExecutionsResponse, Status> {
        use list_open_workflow_executions_request::Filters;
        let by = req.filters.as_ref().map(|filters| match filters {
            Filters::ExecutionFilter(f) => keyword_is("WorkflowId", &f.workflow_id),
            Filters::TypeFilter(f) => keyword_is("WorkflowType", &f.name),
        });
        let page = self.legacy_page(&req.namespace, false, &req, by).await?;
        Ok(ListOpenWorkflowExecutionsResponse {
            executions: page.executions,
            next_page_token: page.next_page_token,
        })
    }

    /// The older typed listing of closed runs: closed in the time filter's range, of one
    /// workflow id, type or close status.
    pub(super) async fn list_closed_runs(
        &self,
        req: ListClosedWorkflowExecutionsRequest,
    ) -> Result<ListClosedWorkflowExecutionsResponse, Status> {
        use list_closed_workflow_executions_request::Filters;
        let by = match &req.filters {
            None => None,
            Some(Filters::ExecutionFilter(f)) => Some(keyword_is("WorkflowId", &f.workflow_id)),
            Some(Filters::TypeFilter(f)) => Some(keyword_is("WorkflowType", &f.name)),
            Some(Filters::StatusFilter(f)) => {
                if f.status == WorkflowExecutionStatus::Unspecified as i32
                    || f.status == Running as i32
                {
                    return Err(invalid(
                        "StatusFilter must be specified and must be not Running.",
                    ));
                }
                Some(Filter::Compare {
                    attribute: attribute("ExecutionStatus", ValueType::Keyword),
                    op: CompareOp::Eq,
                    value: Value::Status(f.status),
                })
            }
        };
        let page = self.legacy_page(&req.namespace, true, &req, by).await?;
        Ok(ListClosedWorkflowExecutionsResponse {
            executions: page.executions,
            next_page_token: page.next_page_token,
        })
    }

    /// A page of the older typed listings, as Temporal rewrites them into a query: open runs
    /// started in the request's time range, or closed runs closed in it, narrowed by `by`.
    async fn legacy_page(
        &self,
        namespace: &str,
        closed: bool,
        request: &impl LegacyListing,
        by: Option<Filter>,
    ) -> Result<Page, Status> {
        let base = self.visibility_query(namespace, "").await?.filter;
        let mut filter = and(base, status_is(Running, closed));
        let time = if closed { "CloseTime" } else { "StartTime" };
        if let Some(range) = time_range(time, request.start_time_filter())? {
            filter = and(Some(filter), range);
        }
        if let Some(by) = by {
            filter = and(Some(filter), by);
        }
        self.list_page(PageRequest {
            namespace,
            filter: Some(filter),
            page_size: request.maximum_page_size(),
            next_page_token: request.next_page_token(),
        })
        .await
    }

    pub(super) async fn count_runs(
        &self,
        req: CountWorkflowExecutionsRequest,
    ) -> Result<CountWorkflowExecutionsResponse, Status> {
        let parsed = self.visibility_query(&req.namespace, &req.query).await?;
        let namespace_id = self.namespace_id(&req.namespace).await?;
        let counted = self
            .node
            .history
            .store
            .count_visibility(
                &namespace_id,
                parsed.filter.as_ref(),
                parsed.group_by.as_ref(),
            )
            .await
            .map_err(|e| to_status(e.into()))?;
        let groups = counted
            .groups
            .into_iter()
            .map(
                |(value, count)| count_workflow_executions_response::AggregationGroup {
                    group_values: vec![group_payload(&value)],
                    count,
                },
            )
            .collect();
        Ok(CountWorkflowExecutionsResponse {
            count: counted.total,
            groups,
        })
    }
}

use WorkflowExecutionStatus::Running;

/// What the older typed listings' requests share.
trait LegacyListing {
    fn start_time_filter(&self) -> Option<&StartTimeFilter>;
    fn maximum_page_size(&self) -> i32;
    fn next_page_token(&self) -> &[u8];
}

macro_rules! legacy_listing {
    ($request:ty) => {
        impl LegacyListing for $request {
            fn start_time_filter(&self) -> Option<&StartTimeFilter> {
                self.start_time_filter.as_ref()
            }
            fn maximum_page_size(&self) -> i32 {
                self.maximum_page_size
            }
            fn next_page_token(&self) -> &[u8] {
                &self.next_page_token
            }
        }
    };
}

legacy_listing!(ListOpenWorkflowExecutionsRequest);
legacy_listing!(ListClosedWorkflowExecutionsRequest);

/// Every attribute a query may name: the system ones, the predefined ones and Temporal's SQL
/// visibility's preallocated custom fields (`Keyword01`), by type.
pub(super) fn search_attribute_keys() -> std::collections::HashMap<String, i32> {
    let system = SYSTEM_ATTRIBUTES
        .iter()
        .map(|(name, t)| (name.to_string(), indexed_type(*t) as i32));
    let predefined = PREDEFINED
        .iter()
        .map(|(name, t)| (name.to_string(), *t as i32));
    let fields = FIELDS_PER_TYPE
        .iter()
        .flat_map(|(t, n)| (1..=*n).map(move |i| (format!("{}{i:02}", type_name(*t)), *t as i32)));
    system.chain(predefined).chain(fields).collect()
}

fn indexed_type(t: ValueType) -> IndexedValueType {
    match t {
        ValueType::Bool => IndexedValueType::Bool,
        ValueType::Int => IndexedValueType::Int,
        ValueType::Double => IndexedValueType::Double,
        ValueType::Datetime => IndexedValueType::Datetime,
        ValueType::Keyword => IndexedValueType::Keyword,
        ValueType::KeywordList => IndexedValueType::KeywordList,
        ValueType::Text => IndexedValueType::Text,
    }
}

fn attribute(name: &str, value_type: ValueType) -> Attribute {
    Attribute {
        name: name.into(),
        alias: name.into(),
        value_type,
    }
}

fn and(left: Option<Filter>, right: Filter) -> Filter {
    match left {
        Some(left) => Filter::And(Box::new(left), Box::new(right)),
        None => right,
    }
}

fn status_is(status: WorkflowExecutionStatus, negated: bool) -> Filter {
    Filter::Compare {
        attribute: attribute("ExecutionStatus", ValueType::Keyword),
        op: if negated {
            CompareOp::Ne
        } else {
            CompareOp::Eq
        },
        value: Value::Status(status as i32),
    }
}

fn keyword_is(name: &str, value: &str) -> Filter {
    Filter::Compare {
        attribute: attribute(name, ValueType::Keyword),
        op: CompareOp::Eq,
        value: Value::String(value.into()),
    }
}

/// The older listings' time filter on `name`: a bound that is unset (or the zero time) is
/// open, as Temporal reads it.
fn time_range(name: &str, range: Option<&StartTimeFilter>) -> Result<Option<Filter>, Status> {
    let set = |t: Option<&prost_wkt_types::Timestamp>| {
        t.filter(|t| t.seconds != 0 || t.nanos != 0)
            .map(|t| Timestamp {
                seconds: t.seconds,
                nanos: t.nanos.clamp(0, 999_999_999) as u32,
            })
    };
    let Some(range) = range else {
        return Ok(None);
    };
    let datetime = attribute(name, ValueType::Datetime);
    let bound = |op, t| Filter::Compare {
        attribute: datetime.clone(),
        op,
        value: Value::Datetime(t),
    };
    Ok(
        match (
            set(range.earliest_time.as_ref()),
            set(range.latest_time.as_ref()),
        ) {
            (Some(from), Some(to)) if from > to => {
                return Err(invalid(
                    "EarliestTime in StartTimeFilter should not be larger than LatestTime.",
                ));
            }
            (Some(from), Some(to)) => Some(Filter::Between {
                attribute: datetime.clone(),
                from: Value::Datetime(from),
                to: Value::Datetime(to),
                negated: false,
            }),
            (Some(from), None) => Some(bound(CompareOp::Ge, from)),
            (None, Some(to)) => Some(bound(CompareOp::Le, to)),
            (None, None) => None,
        },
    )
}

/// A run as a list answers it. As Temporal's, an open run's history length, size and state
/// transitions are zero: the record holds the figures of its close.
fn execution_info(row: &VisibilityRow) -> WorkflowExecutionInfo {
    let millis = |t: &Timestamp| timestamp(t.unix_millis());
    let memo = Memo::decode(row.memo.as_slice()).unwrap_or_default();
    let search_attributes =
        SearchAttributes::decode(row.search_attributes.as_slice()).unwrap_or_default();
    WorkflowExecutionInfo {
        execution: Some(WorkflowExecution {
            workflow_id: row.workflow_id.clone(),
            run_id: row.run_id.clone(),
        }),
        r#type: Some(WorkflowType {
            name: row.workflow_type.clone(),
        }),
        start_time: Some(millis(&row.start_time)),
        close_time: row.close_time.as_ref().map(millis),
        status: row.status,
        history_length: row.history_length.unwrap_or_default(),
        parent_execution: row
            .parent_workflow_id
            .as_ref()
            .map(|workflow_id| WorkflowExecution {
                workflow_id: workflow_id.clone(),
                run_id: row.parent_run_id.clone().unwrap_or_default(),
            }),
        execution_time: Some(millis(&row.execution_time)),
        memo: Some(memo),
        search_attributes: Some(search_attributes),
        task_queue: row.task_queue.clone(),
        state_transition_count: row.state_transition_count.unwrap_or_default(),
        history_size_bytes: row.history_size_bytes.unwrap_or_default(),
        execution_duration: row.execution_duration.map(|nanos| ProtoDuration {
            seconds: nanos / 1_000_000_000,
            nanos: (nanos % 1_000_000_000) as i32,
        }),
        root_execution: Some(WorkflowExecution {
            workflow_id: row.root_workflow_id.clone(),
            run_id: row.root_run_id.clone(),
        }),
        ..Default::default()
    }
}

/// A count group's value as Temporal encodes it: a JSON payload typed Keyword (a status by
/// its name, `Running`), or a null payload for runs without the attribute.
fn group_payload(value: &GroupValue) -> Payload {
    let (encoding, data) = match value {
        GroupValue::Status(status) => {
            let name = WorkflowExecutionStatus::try_from(*status)
                .map(status_name)
                .unwrap_or("Unspecified");
            ("json/plain", serde_json::to_vec(name))
        }
        GroupValue::Keyword(keyword) => ("json/plain", serde_json::to_vec(keyword)),
        GroupValue::Null => ("binary/null", Ok(Vec::new())),
    };
    Payload {
        metadata: [
            ("encoding".to_string(), encoding.as_bytes().to_vec()),
            ("type".to_string(), b"Keyword".to_vec()),
        ]
        .into(),
        data: data.unwrap_or_default(),
        ..Default::default()
    }
}

/// A status's short name, as Temporal's Go enums print it.
fn status_name(status: WorkflowExecutionStatus) -> &'static str {
    match status {
        WorkflowExecutionStatus::Unspecified => "Unspecified",
        WorkflowExecutionStatus::Running => "Running",
        WorkflowExecutionStatus::Completed => "Completed",
        WorkflowExecutionStatus::Failed => "Failed",
        WorkflowExecutionStatus::Canceled => "Canceled",
        WorkflowExecutionStatus::Terminated => "Terminated",
        WorkflowExecutionStatus::ContinuedAsNew => "ContinuedAsNew",
        WorkflowExecutionStatus::TimedOut => "TimedOut",
        WorkflowExecutionStatus::Paused => "Paused",
    }
}

/// A page token: the layout's version, then the last listed run's sort time and start time
/// (big-endian microseconds) and run id.
fn encode_page_token(cursor: &VisibilityCursor) -> Vec<u8> {
    let mut token = vec![PAGE_TOKEN_VERSION];
    token.extend_from_slice(&cursor.sort_time.to_be_bytes());
    token.extend_from_slice(&cursor.start_time.to_be_bytes());
    token.extend_from_slice(cursor.run_id.as_bytes());
    token
}

fn decode_page_token(token: &[u8]) -> Result<Option<VisibilityCursor>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || invalid("unable to deserialize page token");
    if token[0] != PAGE_TOKEN_VERSION || token.len() < 17 {
        return Err(bad());
    }
    let number = |at: usize| i64::from_be_bytes(token[at..at + 8].try_into().expect("8 bytes"));
    let run_id = std::str::from_utf8(&token[17..]).map_err(|_| bad())?;
    Ok(Some(VisibilityCursor {
        sort_time: number(1),
        start_time: number(9),
        run_id: run_id.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_token_round_trips_and_a_bad_one_is_refused() {
        let cursor = VisibilityCursor {
            sort_time: i64::MAX,
            start_time: -5,
            run_id: "0f3c-run".into(),
        };
        let token = encode_page_token(&cursor);
        assert_eq!(decode_page_token(&token).unwrap(), Some(cursor));
        assert_eq!(decode_page_token(&[]).unwrap(), None);
        for bad in [
            &token[..10],
            &[9u8; 20][..],
            &[&token[..17], &[0xff][..]].concat(),
        ] {
            let status = decode_page_token(bad).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
        }
    }

    #[test]
    fn search_attribute_keys_hold_system_predefined_and_preallocated_fields() {
        let keys = search_attribute_keys();
        assert_eq!(keys["WorkflowId"], IndexedValueType::Keyword as i32);
        assert_eq!(keys["StartTime"], IndexedValueType::Datetime as i32);
        assert_eq!(keys["BuildIds"], IndexedValueType::KeywordList as i32);
        assert_eq!(keys["Keyword10"], IndexedValueType::Keyword as i32);
        assert_eq!(keys["Int03"], IndexedValueType::Int as i32);
        assert!(!keys.contains_key("Int04"));
    }
}
