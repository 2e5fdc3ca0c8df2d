//! The namespace registry: namespaces by name and id, cached over the `namespaces` table. The
//! stored blob is the `DescribeNamespaceResponse` a client would see.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use prost::Message;
use sundial_engine::api::enums::v1::IndexedValueType;
use sundial_engine::api::workflowservice::v1::DescribeNamespaceResponse;
use sundial_engine::search_attributes::{self as sa, SearchAttributeTypes};
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

/// Custom search attributes by namespace id, shared with the history shards (which check
/// upserts against them).
pub type SearchAttributeRegistry = Arc<RwLock<HashMap<String, Arc<SearchAttributeTypes>>>>;

/// Retention (millis) by namespace id, shared with the history shards (which schedule the
/// deletion of every run they close).
pub type RetentionRegistry = Arc<RwLock<HashMap<String, i64>>>;

impl Namespace {
    /// Its custom search attributes: alias → type (from the preallocated field it aliases).
    pub fn search_attributes(&self) -> SearchAttributeTypes {
        self.description
            .config
            .as_ref()
            .map(|c| {
                c.custom_search_attribute_aliases
                    .iter()
                    .filter_map(|(field, alias)| {
                        Some((alias.clone(), sa::field_type(field)? as i32))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Namespaces, cached.
#[derive(Clone)]
pub struct Namespaces {
    store: DynStore,
    by_name: Arc<RwLock<HashMap<String, Namespace>>>,
    search_attributes: SearchAttributeRegistry,
    retention: RetentionRegistry,
}

impl Namespaces {
    /// A registry over `store`.
    pub fn new(store: DynStore) -> Self {
        Self {
            store,
            by_name: Arc::default(),
            search_attributes: Arc::default(),
            retention: Arc::default(),
        }
    }

    /// The same registry publishing each namespace's retention to `registry`.
    pub fn with_retention_registry(mut self, registry: RetentionRegistry) -> Self {
        self.retention = registry;
        self
    }

    /// Reads every namespace into the cache (and the shards' registries), so that runs closed
    /// before any request named their namespace still get its retention.
    pub async fn load_all(&self) -> Result<()> {
        for ns in self.list().await? {
            self.publish(&ns);
            self.by_name
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(ns.name.clone(), ns);
        }
        Ok(())
    }

    /// The same registry publishing each namespace's custom search attributes to `registry`.
    pub fn with_registry(mut self, registry: SearchAttributeRegistry) -> Self {
        self.search_attributes = registry;
        self
    }

    fn publish(&self, ns: &Namespace) {
        self.search_attributes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ns.id.clone(), Arc::new(ns.search_attributes()));
        let retention = ns
            .description
            .config
            .as_ref()
            .and_then(|c| c.workflow_execution_retention_ttl.as_ref())
            .map(|d| sundial_engine::time::duration_ms(Some(d)))
            .filter(|ms| *ms > 0);
        let mut registry = self.retention.write().unwrap_or_else(|p| p.into_inner());
        match retention {
            Some(ms) => registry.insert(ns.id.clone(), ms),
            None => registry.remove(&ns.id),
        };
    }

    /// Registers custom search attributes (OperatorService.AddSearchAttributes): each name is
    /// an alias of the next free preallocated field of its type, as in Temporal's SQL
    /// visibility. A name already registered is left as it is.
    pub async fn add_search_attributes(
        &self,
        name: &str,
        attributes: &HashMap<String, i32>,
    ) -> Result<()> {
        let ns = self.get(name).await?;
        let mut description = ns.description.clone();
        let config = description.config.get_or_insert_with(Default::default);
        let aliases = &mut config.custom_search_attribute_aliases;
        let mut sorted: Vec<_> = attributes.iter().collect();
        sorted.sort();
        let mut added = false;
        for (alias, value_type) in sorted {
            if sa::is_system(alias) || sa::PREDEFINED.iter().any(|(n, _)| n == alias) {
                return Err(Error::InvalidArgument(format!(
                    "Search attribute {alias} is reserved by system."
                )));
            }
            if aliases.values().any(|a| a == alias) {
                continue;
            }
            let value_type = IndexedValueType::try_from(*value_type).unwrap_or_default();
            let Some(&(_, count)) = sa::FIELDS_PER_TYPE.iter().find(|(t, _)| *t == value_type)
            else {
                return Err(Error::InvalidArgument(format!(
                    "Unable to create search attributes: unknown type {value_type:?}."
                )));
            };
            let type_name = sa::type_name(value_type);
            let field = (1..=count)
                .map(|i| format!("{type_name}{i:02}"))
                .find(|f| !aliases.contains_key(f))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "Unable to create search attributes: cannot have more than {count} search attribute of type {type_name}."
                    ))
                })?;
            aliases.insert(field, alias.clone());
            added = true;
        }
        if added {
            self.update(&ns, description).await?;
            self.get(name).await?;
        }
        for (alias, value_type) in attributes {
            self.index_attribute(alias, *value_type).await?;
        }
        Ok(())
    }

    /// Has the store index the custom attribute `alias` for filters (see
    /// `VisibilityStore::index_attribute`).
    async fn index_attribute(&self, alias: &str, value_type: i32) -> Result<()> {
        let indexed = IndexedValueType::try_from(value_type).unwrap_or_default();
        match crate::visibility::filter_type(indexed) {
            Some(value_type) => Ok(self.store.index_attribute(alias, value_type).await?),
            None => Ok(()),
        }
    }

    /// Has the store index every namespace's custom attributes (at start-up: an index a
    /// store lacks, say after an upgrade, is built once).
    pub async fn index_search_attributes(&self) -> Result<()> {
        for ns in self.list().await? {
            for (alias, value_type) in ns.search_attributes() {
                self.index_attribute(&alias, value_type).await?;
            }
        }
        Ok(())
    }

    /// Removes custom search attributes (OperatorService.RemoveSearchAttributes).
    pub async fn remove_search_attributes(&self, name: &str, names: &[String]) -> Result<()> {
        let ns = self.get(name).await?;
        let mut description = ns.description.clone();
        let config = description.config.get_or_insert_with(Default::default);
        for alias in names {
            let before = config.custom_search_attribute_aliases.len();
            config
                .custom_search_attribute_aliases
                .retain(|_, a| a != alias);
            if config.custom_search_attribute_aliases.len() == before {
                return Err(Error::InvalidArgument(format!(
                    "Search attribute {alias} doesn't exist."
                )));
            }
        }
        self.update(&ns, description).await?;
        self.get(name).await.map(|_| ())
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
        self.publish(&ns);
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
