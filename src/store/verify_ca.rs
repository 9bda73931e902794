//! `sslmode=verify-ca` as libpq defines it: the server's certificate chain is checked against the trusted roots, its
//! name is not (that is `verify-full`), so a server addressed by IP with a certificate for its DNS name is reached.
//!
//! sqlx 0.8 means the same, but its rustls verifier forgives only the name error of rustls before 0.23.24
//! (`NotValidForName`; later ones report `NotValidForNameContext` — sqlx issue #3793, fixed in sqlx 0.9), so it
//! checks the name as `verify-full` does, and it takes no certificate verifier of ours. So for `verify-ca` over TCP
//! threadline makes the TLS connection itself, and sqlx keeps doing everything else: sqlx connects without TLS to a
//! relay on a Unix socket in a directory only this user may enter; for each connection the relay connects to the
//! server, asks it for TLS (`SSLRequest`), checks the certificate chain against the same roots sqlx would use (the
//! webpki roots and `sslrootcert`) but not the name, presents `sslcert`/`sslkey` when given, and passes the bytes
//! through. A server it cannot verify gets sqlx a Postgres error saying why. Remove with sqlx 0.9.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

/// The message asking a Postgres server for TLS: its length, then the code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// The relay of a store whose URL asks for `verify-ca`: it stops, and its directory goes, when dropped.
pub struct Relay {
    dir: PathBuf,
    _stop: DropGuard,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The options to connect with for `url` (parsed into `options`): as they are, or, for `verify-ca` over TCP,
/// through a relay started here, which each connection to the server waits at most `timeout` for.
/// The relay's tasks run on `tasks` until `stop` (or the relay is dropped).
pub fn through_relay(
    url: &str,
    options: PgConnectOptions,
    timeout: Duration,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> anyhow::Result<(PgConnectOptions, Option<Relay>)> {
    if !matches!(options.get_ssl_mode(), PgSslMode::VerifyCa) || options.get_socket().is_some() {
        return Ok((options, None));
    }
    let server = Server::new(url, &options, timeout)?;
    let dir = std::env::temp_dir().join(format!("threadline-pg-{}", uuid::Uuid::now_v7().simple()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir).context("cannot make the verify-ca relay's directory")?;
    let listener = UnixListener::bind(dir.join(format!(".s.PGSQL.{}", options.get_port())))
        .context("cannot start the verify-ca relay")?;
    let stop = stop.child_token();
    tasks.spawn(serve(listener, Arc::new(server), tasks.clone(), stop.clone()));
    let options = options.socket(&dir).ssl_mode(PgSslMode::Disable);
    Ok((options, Some(Relay { dir, _stop: stop.drop_guard() })))
}

/// Relays each connection sqlx makes (each in a task on `tasks`, which ends with its connection) until `stop`.
async fn serve(listener: UnixListener, server: Arc<Server>, tasks: TaskTracker, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, _)) => {
                tasks.spawn(relay(client, server.clone()));
            }
            Err(err) => {
                tracing::warn!(error = %err, "the verify-ca relay cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Passes one connection's bytes through to the server over verified TLS, or tells sqlx why it cannot.
async fn relay(mut client: UnixStream, server: Arc<Server>) {
    let connected = tokio::time::timeout(server.timeout, server.connect()).await;
    match connected.unwrap_or_else(|_| Err(format!("no TLS connection within {:?}", server.timeout))) {
        Ok(mut tls) => {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut tls).await;
        }
        Err(reason) => {
            let message = format!("sslmode=verify-ca: cannot connect to the database server over TLS: {reason}");
            let _ = client.write_all(&error_response(&message)).await;
        }
    }
}

/// The server, and how TLS with it is made.
struct Server {
    host: String,
    port: u16,
    name: ServerName<'static>,
    connector: TlsConnector,
    timeout: Duration,
}

impl Server {
    fn new(url: &str, options: &PgConnectOptions, timeout: Duration) -> anyhow::Result<Self> {
        let setting = |names: &[&str], variable: &str| ssl_setting(url, names, variable);
        let roots = setting(&["sslrootcert", "ssl-root-cert", "ssl-ca"], "PGSSLROOTCERT");
        let certificate = setting(&["sslcert", "ssl-cert"], "PGSSLCERT");
        let key = setting(&["sslkey", "ssl-key"], "PGSSLKEY");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut trusted = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(roots) = roots {
            for root in CertificateDer::pem_slice_iter(&pem(&roots)?) {
                trusted.add(root.context("sslrootcert: not a PEM certificate")?).context("sslrootcert")?;
            }
        }
        let verifier = Arc::new(ChainOnly { roots: Arc::new(trusted), provider: provider.clone() });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (certificate, key) {
            (Some(certificate), Some(key)) => {
                let chain = CertificateDer::pem_slice_iter(&pem(&certificate)?).collect::<Result<Vec<_>, _>>();
                let key = PrivateKeyDer::from_pem_slice(&pem(&key)?).context("sslkey: not a PEM private key")?;
                config.with_client_auth_cert(chain.context("sslcert: not a PEM certificate")?, key)?
            }
            (None, None) => config.with_no_client_auth(),
            _ => anyhow::bail!("sslcert and sslkey must be given together"),
        };
        let host = options.get_host().to_string();
        let name = ServerName::try_from(host.clone()).context("the database host is no valid server name")?;
        let connector = TlsConnector::from(Arc::new(config));
        Ok(Self { host, port: options.get_port(), name, connector, timeout })
    }

    /// A TCP connection to the server, upgraded to TLS with its certificate chain verified.
    async fn connect(&self) -> Result<TlsStream<TcpStream>, String> {
        let mut tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|err| err.to_string())?;
        tcp.set_nodelay(true).map_err(|err| err.to_string())?;
        tcp.write_all(&SSL_REQUEST).await.map_err(|err| err.to_string())?;
        match tcp.read_u8().await.map_err(|err| err.to_string())? {
            b'S' => self.connector.connect(self.name.clone(), tcp).await.map_err(|err| err.to_string()),
            _ => Err("the server does not offer TLS".into()),
        }
    }
}

/// A TLS setting: the URL's (under any of its names), else the environment's.
fn ssl_setting(url: &str, names: &[&str], variable: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok();
    let given =
        parsed.and_then(|url| url.query_pairs().find(|(key, _)| names.contains(&&**key)).map(|(_, v)| v.into()));
    given.or_else(|| std::env::var(variable).ok())
}

/// PEM text given inline (as sqlx takes it), else read from the file named.
fn pem(setting: &str) -> anyhow::Result<Vec<u8>> {
    let trimmed = setting.trim();
    if trimmed.starts_with("-----BEGIN") && trimmed.ends_with("-----") {
        return Ok(setting.as_bytes().to_vec());
    }
    std::fs::read(Path::new(setting)).with_context(|| format!("cannot read {setting}"))
}

/// A Postgres `ErrorResponse` (FATAL, SQLSTATE 08006 connection failure) with this message.
fn error_response(message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (kind, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', "08006"), (b'M', message)] {
        fields.push(kind);
        fields.extend_from_slice(value.replace('\0', " ").as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let length = u32::try_from(fields.len() + 4).unwrap_or(u32::MAX);
    [&[b'E'][..], &length.to_be_bytes(), &fields].concat()
}

/// Verifies a server's certificate chain against the roots, and the handshake's signatures; never the name.
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let certificate = ParsedCertificate::try_from(end_entity)?;
        let algorithms = self.provider.signature_verification_algorithms.all;
        verify_server_cert_signed_by_trust_anchor(&certificate, &self.roots, intermediates, now, algorithms)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_read_under_each_of_their_names_and_a_refusal_is_a_postgres_error() {
        let url = "postgres://db/x?sslmode=verify-ca&ssl-ca=/ca.pem&sslcert=%2Fme.pem";
        let names = ["sslrootcert", "ssl-root-cert", "ssl-ca"];
        assert_eq!(ssl_setting(url, &names, "THREADLINE_TEST_UNSET").as_deref(), Some("/ca.pem"));
        assert_eq!(ssl_setting(url, &["sslcert"], "THREADLINE_TEST_UNSET").as_deref(), Some("/me.pem"));
        assert_eq!(ssl_setting(url, &["sslkey"], "THREADLINE_TEST_UNSET"), None);
        let pem_text = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
        assert_eq!(pem(pem_text).unwrap(), pem_text.as_bytes());
        assert!(pem("/no/such/file.pem").unwrap_err().to_string().contains("/no/such/file.pem"));
        let error = error_response("no");
        let fields = b"SFATAL\0VFATAL\0C08006\0Mno\0\0";
        assert_eq!(error, [&b"E"[..], &u32::try_from(fields.len() + 4).unwrap().to_be_bytes(), fields].concat());
    }
}
