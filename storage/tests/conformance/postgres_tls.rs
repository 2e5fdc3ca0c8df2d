//! TLS to PostgreSQL against a private server that has TLS switched on: what each setting of
//! Temporal's `sql.tls` keys checks, and that the client certificate is presented.
//!
//! The certificates (a CA, a server certificate for `localhost` and 127.0.0.1, a client
//! certificate, and a second CA nobody trusts) are made with the `openssl` command.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sundial_storage::postgres::{PostgresOptions, PostgresStore, TlsOptions, schema};
use sundial_storage::{Error, ShardStore};

use super::postgres::Server;
use super::postgres_backend::admin_client;

/// The certificate files of one test run.
struct Certificates {
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl (Debian's `openssl` package)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A new P-256 key in `key` and a certificate request (`req` with `rest`).
fn new_key(dir: &Path, key: &str, rest: &[&str]) {
    let mut args = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key,
    ];
    args.extend_from_slice(rest);
    openssl(dir, &args);
}

/// A CA named `name`: `<name>.pem` and `<name>.key`.
fn make_ca(dir: &Path, name: &str) {
    let (key, cert, subject) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("/CN={name}"),
    );
    new_key(
        dir,
        &key,
        &["-x509", "-out", &cert, "-days", "2", "-subj", &subject],
    );
}

/// A certificate `<name>.pem` (key `<name>.key`) for `subject`, signed by the CA `ca`.
fn make_signed(dir: &Path, name: &str, subject: &str, ca: &str, extensions: &str) {
    let (key, csr, cert, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    fs::write(dir.join(&ext), extensions).unwrap();
    new_key(dir, &key, &["-out", &csr, "-subj", subject]);
    let (ca_cert, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

impl Certificates {
    fn make(dir: &Path) -> Certificates {
        if dir.exists() {
            fs::remove_dir_all(dir).unwrap();
        }
        fs::create_dir_all(dir).unwrap();
        make_ca(dir, "ca");
        make_ca(dir, "other-ca");
        make_signed(
            dir,
            "server",
            "/CN=localhost",
            "ca",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        );
        make_signed(
            dir,
            "client",
            "/CN=sundial",
            "ca",
            "extendedKeyUsage=clientAuth\n",
        );
        // The server reads its key as the `postgres` user, and only from a private file.
        let server_key = dir.join("server.key");
        if fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0) {
            let status = Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown the certificates to postgres");
        }
        let status = Command::new("chmod")
            .arg("600")
            .arg(&server_key)
            .status()
            .unwrap();
        assert!(status.success());
        Certificates {
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other-ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key,
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }
}

/// Opens a store with `tls` and names the outcome: `Ok` (and the session is TLS with the
/// client certificate's subject, if any) or the error.
async fn open_with(options: &PostgresOptions, tls: TlsOptions) -> Result<Option<String>, Error> {
    let mut options = options.clone();
    options.tls = tls;
    let store = PostgresStore::open(&options).await?;
    store.acquire_shard(1, "owner-a").await?;
    let admin = admin_client(&options).await;
    let row = admin
        .query_one(
            "SELECT bool_and(s.ssl), max(s.client_dn) FROM pg_stat_ssl s
             JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = $1 AND a.application_name = 'sundial'",
            &[&options.database_name],
        )
        .await
        .unwrap();
    let ssl: Option<bool> = row.get(0);
    assert_eq!(ssl, Some(true), "every connection of the store is TLS");
    Ok(row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_checks_what_the_options_ask_and_presents_the_client_certificate() {
    let server = tokio::task::block_in_place(|| Server::start("tls"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("pg-tls")
        .join(std::process::id().to_string());
    let certs = tokio::task::block_in_place(|| Certificates::make(&dir));
    let options = server.fresh_options();
    schema::create_database(&options).await.unwrap();
    schema::setup(&options).await.unwrap();

    // Switch TLS on (the server asks for, and checks, client certificates signed by `ca`).
    let admin = admin_client(&options).await;
    for (setting, value) in [
        ("ssl_cert_file", &certs.server_cert),
        ("ssl_key_file", &certs.server_key),
        ("ssl_ca_file", &certs.ca),
    ] {
        let sql = format!("ALTER SYSTEM SET {setting} = '{}'", value.display());
        admin.batch_execute(&sql).await.unwrap();
    }
    admin
        .batch_execute("ALTER SYSTEM SET ssl = on")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = admin_client(&options).await;
        let ssl: String = fresh.query_one("SHOW ssl", &[]).await.unwrap().get(0);
        if ssl == "on" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never turned TLS on"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let full = TlsOptions {
        enabled: true,
        ca_file: Some(certs.ca.clone()),
        cert_file: Some(certs.client_cert.clone()),
        key_file: Some(certs.client_key.clone()),
        enable_host_verification: true,
        server_name: Some("localhost".to_string()),
    };
    // verify-full: the chain and the name; the client certificate is presented.
    assert_eq!(
        open_with(&options, full.clone()).await.unwrap(),
        Some("/CN=sundial".to_string())
    );
    // Without serverName the name checked is connectAddr's host, 127.0.0.1: in the SAN too.
    let by_address = TlsOptions {
        server_name: None,
        ..full.clone()
    };
    open_with(&options, by_address).await.unwrap();
    // A name the certificate does not carry fails verify-full...
    let wrong_name = TlsOptions {
        server_name: Some("db.example".to_string()),
        ..full.clone()
    };
    let err = open_with(&options, wrong_name.clone()).await.unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    // ... but not verify-ca (enableHostVerification off, a caFile).
    let chain_only = TlsOptions {
        enable_host_verification: false,
        ..wrong_name
    };
    open_with(&options, chain_only).await.unwrap();
    // A CA that did not sign the server's certificate fails.
    let other_ca = TlsOptions {
        ca_file: Some(certs.other_ca.clone()),
        ..full.clone()
    };
    let err = open_with(&options, other_ca).await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    // require without a caFile: encrypted, nothing verified, no client certificate.
    let require = TlsOptions {
        enabled: true,
        ..TlsOptions::default()
    };
    assert_eq!(open_with(&options, require).await.unwrap(), None);
    // sslmode=require without tls: the same.
    let mut attribute = options.clone();
    attribute
        .connect_attributes
        .insert("sslmode".to_string(), "require".to_string());
    assert_eq!(
        open_with(&attribute, TlsOptions::default()).await.unwrap(),
        None
    );
    let _ = fs::remove_dir_all(&dir);
}
