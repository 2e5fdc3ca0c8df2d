//! `OperatorService`: search attributes (add, remove, list) over the namespace registry; the
//! other RPCs answer `Unimplemented` (generated default stubs).

use sundial_actors::Node;
use sundial_engine::search_attributes as sa;
use sundial_proto::operatorservice::operator_service_server::OperatorService;
use sundial_proto::operatorservice::{
    AddSearchAttributesRequest, AddSearchAttributesResponse, ListSearchAttributesRequest,
    ListSearchAttributesResponse, RemoveSearchAttributesRequest, RemoveSearchAttributesResponse,
};
use tonic::{Request, Response, Status};

use crate::status::{invalid, to_status};

/// The operator service of a node.
#[derive(Clone)]
pub struct Operator {
    node: Node,
}

impl Operator {
    /// The service over `node`.
    pub fn new(node: Node) -> Self {
        Self { node }
    }
}

fn namespace_of(name: &str) -> Result<&str, Status> {
    if name.is_empty() {
        return Err(invalid("Namespace is not set on request."));
    }
    Ok(name)
}

/// The namespace of an add or remove request, which must name some attributes.
fn change_of(name: &str, no_attributes: bool) -> Result<&str, Status> {
    let ns = namespace_of(name)?;
    if no_attributes {
        return Err(invalid("SearchAttributes are not set on request."));
    }
    Ok(ns)
}

#[tonic::async_trait]
impl OperatorService for Operator {
    async fn add_search_attributes(
        &self,
        request: Request<AddSearchAttributesRequest>,
    ) -> Result<Response<AddSearchAttributesResponse>, Status> {
        let req = request.into_inner();
        let ns = change_of(&req.namespace, req.search_attributes.is_empty())?;
        self.node
            .namespaces
            .add_search_attributes(ns, &req.search_attributes)
            .await
            .map_err(to_status)?;
        // The shards validate and list with the attributes: they know them before this answers.
        self.node
            .history
            .refresh_namespaces()
            .await
            .map_err(to_status)?;
        Ok(Response::new(AddSearchAttributesResponse {}))
    }

    async fn remove_search_attributes(
        &self,
        request: Request<RemoveSearchAttributesRequest>,
    ) -> Result<Response<RemoveSearchAttributesResponse>, Status> {
        let req = request.into_inner();
        let ns = change_of(&req.namespace, req.search_attributes.is_empty())?;
        self.node
            .namespaces
            .remove_search_attributes(ns, &req.search_attributes)
            .await
            .map_err(to_status)?;
        self.node
            .history
            .refresh_namespaces()
            .await
            .map_err(to_status)?;
        Ok(Response::new(RemoveSearchAttributesResponse {}))
    }

    async fn list_search_attributes(
        &self,
        request: Request<ListSearchAttributesRequest>,
    ) -> Result<Response<ListSearchAttributesResponse>, Status> {
        let req = request.into_inner();
        let ns = namespace_of(&req.namespace)?;
        let namespace = self.node.namespaces.get(ns).await.map_err(to_status)?;
        let keyword = sundial_engine::api::enums::v1::IndexedValueType::Keyword as i32;
        let mut system_attributes: std::collections::HashMap<String, i32> = sa::SYSTEM
            .iter()
            .map(|name| (name.to_string(), system_type(name).unwrap_or(keyword)))
            .collect();
        system_attributes.extend(
            sa::PREDEFINED
                .iter()
                .map(|(name, t)| (name.to_string(), *t as i32)),
        );
        Ok(Response::new(ListSearchAttributesResponse {
            custom_attributes: namespace.search_attributes().into_iter().collect(),
            system_attributes,
            storage_schema: Default::default(),
        }))
    }
}

/// The type of a system attribute that is not a keyword.
fn system_type(name: &str) -> Option<i32> {
    use sundial_engine::api::enums::v1::IndexedValueType as T;
    let t = match name {
        "StartTime" | "ExecutionTime" | "CloseTime" => T::Datetime,
        "HistoryLength" | "ExecutionDuration" | "StateTransitionCount" | "HistorySizeBytes" => {
            T::Int
        }
        _ => return None,
    };
    Some(t as i32)
}
