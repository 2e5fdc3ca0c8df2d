//! The namespace registry: namespaces by name and id, cached over the `namespaces` table. The
//! stored blob is the `DescribeNamespaceResponse` a client would see.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use prost::Message;
use sundial_engine::api::workflowservice::v1::DescribeNamespaceResponse;
use sundial_storage::{DynStore, NamespaceRow};

use crate::{Error, Result};

/// A namespace as the server uses it.
#[derive(Debug, Clone)]
pub struct Namespace {
    /// Id (UUID).
    pub id: String,
    /// Name.
    pub name: String,
    /// Compare-and-set version.
    pub version: i64,
    /// What DescribeNamespace returns.
    pub description: DescribeNamespaceResponse,
}

/// Namespaces, cached.
#[derive(Clone)]
pub struct Namespaces {
    store: DynStore,
    by_name: Arc<RwLock<HashMap<String, Namespace>>>,
}

impl Namespaces {
    /// A registry over `store`.
    pub fn new(store: DynStore) -> Self {
        Self {
            store,
            by_name: Arc::default(),
        }
    }

    fn decode(row: NamespaceRow) -> Result<Namespace> {
        let description = DescribeNamespaceResponse::decode(row.data.as_slice())
            .map_err(|e| Error::Unavailable(format!("corrupt namespace {}: {e}", row.name)))?;
        Ok(Namespace {
            id: row.id,
            name: row.name,
            version: row.notification_version,
            description,
        })
    }

    /// Looks a namespace up by name: [`Error::NamespaceNotFound`] when missing.
    pub async fn get(&self, name: &str) -> Result<Namespace> {
        if let Some(ns) = self
            .by_name
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(ns.clone());
        }
        let row = self
            .store
            .get_namespace_by_name(name)
            .await?
            .ok_or_else(|| Error::NamespaceNotFound(name.to_string()))?;
        let ns = Self::decode(row)?;
        self.by_name
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ns.name.clone(), ns.clone());
        Ok(ns)
    }

    /// Creates a namespace; `AlreadyExists` from the store when the name is taken.
    pub async fn create(&self, id: String, description: DescribeNamespaceResponse) -> Result<()> {
        let name = description
            .namespace_info
            .as_ref()
            .map(|i| i.name.clone())
            .unwrap_or_default();
        self.store
            .create_namespace(NamespaceRow {
                id,
                name: name.clone(),
                notification_version: 1,
                data: description.encode_to_vec(),
            })
            .await?;
        self.by_name
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        Ok(())
    }

    /// Replaces a namespace's description (compare-and-set on its version).
    pub async fn update(
        &self,
        ns: &Namespace,
        description: DescribeNamespaceResponse,
    ) -> Result<()> {
        self.store
            .update_namespace(
                NamespaceRow {
                    id: ns.id.clone(),
                    name: ns.name.clone(),
                    notification_version: ns.version + 1,
                    data: description.encode_to_vec(),
                },
                ns.version,
            )
            .await?;
        self.by_name
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ns.name);
        Ok(())
    }

    /// Every namespace.
    pub async fn list(&self) -> Result<Vec<Namespace>> {
        self.store
            .list_namespaces()
            .await?
            .into_iter()
            .map(Self::decode)
            .collect()
    }
}
