//! `sundial schema setup|update|version`: the schema of a datastore, as Temporal's
//! `temporal-sql-tool` manages it. The migrations are embedded in the binary; each backend
//! records how many it has applied in its `schema_version` table.

use anyhow::{Context, Result, bail};
use sundial_storage::mysql::{self, MysqlOptions};
use sundial_storage::postgres::PostgresOptions;
use sundial_storage::postgres::schema as pg;
use sundial_storage::sqlite;

use crate::store::{Backend, Datastore};

/// What to do to the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create the database when missing (and the user may), then the schema in an empty one.
    Setup,
    /// Apply the migrations an older schema is missing.
    Update,
    /// Report the stored version against this build's.
    Version,
}

/// What an action found and did, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outcome {
    /// The database did not exist and was created.
    created_database: bool,
    /// The stored version before the action (`None`: no Sundial schema).
    before: Option<i64>,
    /// The stored version after it.
    after: Option<i64>,
    /// The version this build writes.
    current: i64,
}

/// Runs `action` on `datastore` and returns the line to print. A database the action cannot
/// bring to this build's version is an error naming the command that can.
pub async fn run(action: Action, datastore: &Datastore) -> Result<String> {
    let outcome = match &datastore.backend {
        Backend::Memory => {
            return Ok(format!(
                "{datastore}: nothing to manage: an in-memory database starts empty, with the \
                 current schema, in every process"
            ));
        }
        Backend::Sqlite { path, create } => {
            let existed = path.exists();
            if !existed && (action == Action::Version || !create) {
                bail!(
                    "{datastore}: the file does not exist (`sundial schema setup` or `sundial \
                     server start` creates it)"
                );
            }
            let stored = || {
                sqlite::stored_schema_version(path)
                    .with_context(|| format!("{datastore}: reading the schema version"))
            };
            let before = if existed { stored()? } else { None };
            if action != Action::Version {
                // SQLite migrates whenever it opens a file.
                drop(datastore.open(false).await?);
            }
            Outcome {
                created_database: !existed,
                before,
                after: stored()?,
                current: sqlite::current_schema_version(),
            }
        }
        Backend::Postgres(options) => on_server(action, options, datastore).await?,
        Backend::Mysql(options) => on_server(action, options, datastore).await?,
    };
    report(action, datastore, outcome)
}

/// The schema commands of a database server's backend.
trait ServerSchema {
    /// The version this build writes.
    fn current(&self) -> i64;
    /// Creates the database unless it exists; true when it did.
    async fn create_database(&self) -> sundial_storage::Result<bool>;
    /// The stored version; `None` without a Sundial schema.
    async fn stored(&self) -> sundial_storage::Result<Option<i64>>;
    /// Creates the schema in a database that has none.
    async fn setup(&self) -> sundial_storage::Result<()>;
    /// Brings an older schema up to [`ServerSchema::current`].
    async fn update(&self) -> sundial_storage::Result<()>;
}

impl ServerSchema for PostgresOptions {
    fn current(&self) -> i64 {
        pg::CURRENT_VERSION
    }
    async fn create_database(&self) -> sundial_storage::Result<bool> {
        pg::create_database(self).await
    }
    async fn stored(&self) -> sundial_storage::Result<Option<i64>> {
        pg::version(self).await
    }
    async fn setup(&self) -> sundial_storage::Result<()> {
        pg::setup(self).await
    }
    async fn update(&self) -> sundial_storage::Result<()> {
        pg::update(self).await.map(drop)
    }
}

impl ServerSchema for MysqlOptions {
    fn current(&self) -> i64 {
        mysql::current_version()
    }
    async fn create_database(&self) -> sundial_storage::Result<bool> {
        mysql::create_database(self).await
    }
    async fn stored(&self) -> sundial_storage::Result<Option<i64>> {
        Ok(mysql::schema_version(self).await?.stored)
    }
    async fn setup(&self) -> sundial_storage::Result<()> {
        mysql::setup_schema(self).await.map(drop)
    }
    async fn update(&self) -> sundial_storage::Result<()> {
        mysql::update_schema(self).await.map(drop)
    }
}

/// Runs `action` on a database server.
async fn on_server(
    action: Action,
    db: &impl ServerSchema,
    datastore: &Datastore,
) -> Result<Outcome> {
    let at = |what: &str| format!("{datastore}: {what}");
    let created_database = match action {
        Action::Setup => db
            .create_database()
            .await
            .with_context(|| at("creating the database"))?,
        Action::Update | Action::Version => false,
    };
    let before = db
        .stored()
        .await
        .with_context(|| at("reading the schema version"))?;
    let current = db.current();
    let changed = match (action, before) {
        (Action::Setup, None) => {
            db.setup()
                .await
                .with_context(|| at("setting up the schema"))?;
            true
        }
        (Action::Update, Some(v)) if v < current => {
            db.update()
                .await
                .with_context(|| at("updating the schema"))?;
            true
        }
        _ => false,
    };
    let after = if changed {
        db.stored()
            .await
            .with_context(|| at("reading the schema version"))?
    } else {
        before
    };
    Ok(Outcome {
        created_database,
        before,
        after,
        current,
    })
}

/// The line that says what happened, or the error that says what to run instead.
fn report(action: Action, datastore: &Datastore, outcome: Outcome) -> Result<String> {
    let Outcome {
        created_database,
        before,
        after,
        current,
    } = outcome;
    let state = match after {
        None => "holds no Sundial schema: run `sundial schema setup`".to_string(),
        Some(v) if v < current => format!(
            "holds schema version {v}, older than this build's {current}: run `sundial schema \
             update`"
        ),
        Some(v) if v > current => format!(
            "holds schema version {v}, newer than this build's {current}: run a newer Sundial"
        ),
        Some(v) => format!("schema version {v} (current)"),
    };
    if after != Some(current) {
        return match action {
            Action::Version => Ok(format!("{datastore}: {state}")),
            Action::Setup | Action::Update => bail!("{datastore} {state}"),
        };
    }
    let done = match (action, before) {
        (Action::Version, _) => state,
        (_, Some(v)) if v == current => format!("already at schema version {v}; nothing to do"),
        (Action::Setup, _) => format!("schema set up at version {current}"),
        (Action::Update, Some(v)) => format!("schema updated from version {v} to {current}"),
        (Action::Update, None) => format!("schema version {current}"),
    };
    let created = if created_database {
        "created the database; "
    } else {
        ""
    };
    Ok(format!("{datastore}: {created}{done}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datastore() -> Datastore {
        Datastore::dev(Some("x.db".into()))
    }

    fn outcome(before: Option<i64>, after: Option<i64>) -> Outcome {
        Outcome {
            created_database: false,
            before,
            after,
            current: 2,
        }
    }

    #[test]
    fn reports_name_the_command_that_fixes_the_schema() {
        let d = datastore();
        let version = |stored| report(Action::Version, &d, outcome(stored, stored)).unwrap();
        assert!(version(None).ends_with("run `sundial schema setup`"));
        assert!(version(Some(1)).ends_with("run `sundial schema update`"));
        assert!(version(Some(3)).ends_with("run a newer Sundial"));
        assert!(version(Some(2)).ends_with("schema version 2 (current)"));

        let update = report(Action::Update, &d, outcome(None, None)).unwrap_err();
        assert!(update.to_string().ends_with("run `sundial schema setup`"));
        let setup = report(Action::Setup, &d, outcome(Some(1), Some(1))).unwrap_err();
        assert!(setup.to_string().ends_with("run `sundial schema update`"));
    }

    #[test]
    fn reports_say_what_was_done() {
        let d = datastore();
        let created = Outcome {
            created_database: true,
            ..outcome(None, Some(2))
        };
        assert_eq!(
            report(Action::Setup, &d, created).unwrap(),
            "datastore \"sqlite-default\" (SQLite file x.db): created the database; schema set \
             up at version 2"
        );
        let again = report(Action::Setup, &d, outcome(Some(2), Some(2))).unwrap();
        assert!(again.ends_with("already at schema version 2; nothing to do"));
        let updated = report(Action::Update, &d, outcome(Some(1), Some(2))).unwrap();
        assert!(updated.ends_with("schema updated from version 1 to 2"));
    }
}
