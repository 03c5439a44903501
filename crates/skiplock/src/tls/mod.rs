//! TLS for every connection skiplock opens: the pool's, the LISTEN
//! connection, and [`connect_raw`]'s.
//!
//! The settings are libpq's (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
//! `sslsni`), read from the database URL in either of its forms
//! (`postgres://…?sslmode=verify-full` or `host=… sslmode=verify-full`) and
//! settable on [`ClientBuilder`](crate::ClientBuilder). They mean what they
//! mean to libpq:
//!
//! | `sslmode` | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | never | no |
//! | `prefer` (default) | if the server offers it | only if a root certificate file exists: its chain |
//! | `require` | always | only if a root certificate file exists: its chain (as `verify-ca`) |
//! | `verify-ca` | always | its chain, against `sslrootcert` (which must exist) |
//! | `verify-full` | always | its chain, and that it names the host connected to |
//!
//! The root certificates come from `sslrootcert`, by default
//! `~/.postgresql/root.crt`; `sslrootcert=system` means the system's trusted
//! roots, and makes `verify-full` the default and the only mode allowed. A
//! client certificate is sent when `sslcert` (default
//! `~/.postgresql/postgresql.crt`) exists; its key is `sslkey` (default
//! `~/.postgresql/postgresql.key`), which must not be readable by group or
//! others. Unlike libpq, the `PGSSL*` environment variables are not read
//! (tokio-postgres reads none of libpq's), and neither are `sslcrl`,
//! `sslpassword` and the protocol-version bounds: they are refused by name.
//!
//! The TLS stack is rustls with the ring provider; "system roots" are the
//! platform's store, read by `rustls-native-certs` (see `docs/DESIGN.md`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio_postgres::Socket;
use tokio_postgres::tls::MakeTlsConnect;

use crate::error::{Error, Result};

pub(crate) mod refusal;

pub(crate) use refusal::TlsRefusal;

/// The root certificates file libpq reads when `sslrootcert` is not given,
/// under the home directory.
pub const ROOT_CERT_DEFAULT: &str = ".postgresql/root.crt";
/// The client certificate libpq sends when `sslcert` is not given (if the
/// file exists), under the home directory.
pub const CLIENT_CERT_DEFAULT: &str = ".postgresql/postgresql.crt";
/// The client certificate's key when `sslkey` is not given, under the home
/// directory.
pub const CLIENT_KEY_DEFAULT: &str = ".postgresql/postgresql.key";

/// How a connection uses TLS, as libpq's `sslmode`. The default is
/// [`SslMode::Prefer`], as libpq's.
///
/// # Example: parse it as the URL spells it
///
/// ```
/// use skiplock::SslMode;
/// assert_eq!("verify-full".parse::<SslMode>()?, SslMode::VerifyFull);
/// assert_eq!(SslMode::default(), SslMode::Prefer);
/// assert_eq!(SslMode::VerifyCa.to_string(), "verify-ca");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SslMode {
    /// Never encrypt.
    Disable,
    /// Encrypt if the server offers it; check the server's certificate
    /// chain only if a root certificate file exists.
    #[default]
    Prefer,
    /// Always encrypt; check the chain only if a root certificate file
    /// exists (then as [`SslMode::VerifyCa`], for libpq's compatibility).
    Require,
    /// Always encrypt, and check that a CA of `sslrootcert` signed the
    /// server's certificate.
    VerifyCa,
    /// As [`SslMode::VerifyCa`], and check that the certificate is for the
    /// host connected to.
    VerifyFull,
}

impl SslMode {
    /// The name libpq gives it: `disable`, `prefer`, `require`, `verify-ca`,
    /// `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(Error::invalid(
                    "sslmode",
                    "\"allow\" is not supported (it tries without TLS first); use \"prefer\"",
                ));
            }
            other => {
                return Err(Error::invalid(
                    "sslmode",
                    format!("{other:?} is not one of disable, prefer, require, verify-ca, verify-full"),
                ));
            }
        })
    }
}

/// The TLS settings of a connection: libpq's `sslmode`, `sslrootcert`,
/// `sslcert`, `sslkey` and `sslsni`, as read from a URL (see the
/// [module's table](crate::tls)) and overridden by the builder.
///
/// # Example: what a URL asks for
///
/// ```
/// use skiplock::{SslMode, TlsConfig};
/// let (pg, tls) = TlsConfig::from_url(
///     "postgres://app@db.internal/app?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem",
/// )?;
/// assert_eq!(tls.ssl_mode(), SslMode::VerifyFull);
/// assert_eq!(tls.root_cert(), Some(std::path::Path::new("/etc/ssl/db-ca.pem")));
/// assert_eq!(pg.get_dbname(), Some("app"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    mode: Option<SslMode>,
    root_cert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    sni: bool,
}

/// libpq's options this module reads from a connection string.
const OURS: [&str; 5] = ["sslmode", "sslrootcert", "sslcert", "sslkey", "sslsni"];
/// libpq's TLS options skiplock does not support: refused by name rather
/// than left to tokio-postgres's "unknown option".
const REFUSED: [&str; 7] = [
    "sslpassword",
    "sslcrl",
    "sslcrldir",
    "sslcertmode",
    "sslcompression",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
];

impl TlsConfig {
    /// Splits a database URL, in either form, into tokio-postgres's
    /// settings and the TLS settings, reading the TLS options as libpq
    /// does. The options tokio-postgres knows (`host`, `target_session_attrs`,
    /// …) go to it unchanged; its `ssl_mode` is set from `sslmode`
    /// (`require` for the two `verify-` modes, which it does not know).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for `database_url` when it does not parse,
    /// and for an option (`sslmode`, …) whose value is wrong or which is not
    /// supported. The message never quotes the URL's password.
    pub fn from_url(url: &str) -> Result<(tokio_postgres::Config, TlsConfig)> {
        let (rest, options) = split(url)?;
        let mut tls = TlsConfig { sni: true, ..TlsConfig::default() };
        for (key, value) in options {
            match key.as_str() {
                "sslmode" => tls.mode = Some(value.parse()?),
                "sslrootcert" => tls.root_cert = Some(value.into()),
                "sslcert" => tls.cert = Some(value.into()),
                "sslkey" => tls.key = Some(value.into()),
                "sslsni" => tls.sni = value != "0",
                refused => {
                    return Err(Error::invalid(refused, "this libpq option is not supported by skiplock"));
                }
            }
        }
        let mut pg = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| Error::invalid("database_url", crate::redact::redact_error(&e.to_string(), url)))?;
        pg.ssl_mode(tls.pg_mode());
        Ok((pg, tls))
    }

    /// The `sslmode` in force: as set, else `verify-full` with
    /// `sslrootcert=system`, else `prefer`.
    pub fn ssl_mode(&self) -> SslMode {
        self.mode.unwrap_or(if self.system_roots() { SslMode::VerifyFull } else { SslMode::Prefer })
    }

    /// `sslrootcert` as given (`system` for the system's roots); `None`: the
    /// default, `~/.postgresql/root.crt` if it exists.
    pub fn root_cert(&self) -> Option<&Path> {
        self.root_cert.as_deref()
    }

    /// `sslcert` and `sslkey` as given; `None`: libpq's defaults under
    /// `~/.postgresql/`.
    pub fn client_cert(&self) -> (Option<&Path>, Option<&Path>) {
        (self.cert.as_deref(), self.key.as_deref())
    }

    pub(crate) fn set_mode(&mut self, mode: SslMode) {
        self.mode = Some(mode);
    }

    pub(crate) fn set_root_cert(&mut self, path: PathBuf) {
        self.root_cert = Some(path);
    }

    pub(crate) fn set_client_cert(&mut self, cert: PathBuf, key: PathBuf) {
        self.cert = Some(cert);
        self.key = Some(key);
    }

    /// The mode tokio-postgres is given: it knows only whether to ask.
    pub(crate) fn pg_mode(&self) -> tokio_postgres::config::SslMode {
        match self.ssl_mode() {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        }
    }

    fn system_roots(&self) -> bool {
        self.root_cert.as_deref() == Some(Path::new("system"))
    }

    /// Reads the certificate files and builds the connector, as libpq would
    /// for its connection.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the option (`sslrootcert`, `sslcert`,
    /// `sslkey`, `sslmode`) and the file when a file is missing that the
    /// mode needs, cannot be read or holds no certificate or key, when the
    /// key is readable by others, or when `sslrootcert=system` is given with
    /// a mode weaker than `verify-full`. Never a key's contents.
    pub fn connector(&self) -> Result<TlsConnector> {
        let mode = self.ssl_mode();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = if mode == SslMode::Disable { None } else { self.roots(mode)? };
        let verifier = Verifier::new(roots, mode, provider.clone())?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid("sslmode", e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match self.client_identity(mode)? {
            Some((certs, key, key_path)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| Error::invalid("sslkey", format!("{}: {e}", key_path.display())))?,
            None => builder.with_no_client_auth(),
        };
        config.enable_sni = self.sni;
        // As libpq 17 does; PostgreSQL 17's direct TLS (sslnegotiation=direct) requires it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(TlsConnector { inner: tokio_postgres_rustls::MakeRustlsConnect::new(config), mode })
    }

    /// The trust anchors and what to call them in errors; `None`: no
    /// verification (libpq's prefer and require without a root file).
    fn roots(&self, mode: SslMode) -> Result<Option<(rustls::RootCertStore, String)>> {
        if self.system_roots() {
            if mode != SslMode::VerifyFull {
                return Err(Error::invalid(
                    "sslmode",
                    format!("weak sslmode \"{mode}\" may not be used with sslrootcert=system (use \"verify-full\")"),
                ));
            }
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(Error::invalid(
                    "sslrootcert",
                    "system: no trusted root certificates found in the system's store",
                ));
            }
            return Ok(Some((roots, "the system's trusted roots (sslrootcert=system)".into())));
        }
        let path = match (&self.root_cert, home()) {
            (Some(p), _) => p.clone(),
            (None, Some(home)) => home.join(ROOT_CERT_DEFAULT),
            (None, None) if mode.verifies() => {
                return Err(Error::invalid(
                    "sslrootcert",
                    "no root certificate file given and no home directory to find ~/.postgresql/root.crt in; \
                     provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode \
                     to disable server certificate verification",
                ));
            }
            (None, None) => return Ok(None),
        };
        if std::fs::metadata(&path).is_err() {
            if mode.verifies() {
                return Err(Error::invalid(
                    "sslrootcert",
                    format!(
                        "root certificate file \"{}\" does not exist; provide the file, use the system's trusted \
                         roots with sslrootcert=system, or change sslmode to disable server certificate \
                         verification",
                        path.display()
                    ),
                ));
            }
            return Ok(None);
        }
        let mut roots = rustls::RootCertStore::empty();
        let certs = read_certs("sslrootcert", &path)?;
        let (_, refused) = roots.add_parsable_certificates(certs);
        if roots.is_empty() {
            return Err(Error::invalid(
                "sslrootcert",
                format!("{}: none of its {refused} certificates can be a trust anchor", path.display()),
            ));
        }
        Ok(Some((roots, format!("sslrootcert ({})", path.display()))))
    }

    /// The client certificate chain and key, if libpq would send one:
    /// `sslcert` (or the default) exists.
    fn client_identity(
        &self,
        mode: SslMode,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, PathBuf)>> {
        if mode == SslMode::Disable {
            return Ok(None);
        }
        let home = home();
        let Some(cert) = self.cert.clone().or_else(|| home.as_ref().map(|h| h.join(CLIENT_CERT_DEFAULT))) else {
            return Ok(None);
        };
        if std::fs::metadata(&cert).is_err() {
            // libpq goes on without a client certificate, even one named.
            return Ok(None);
        }
        let Some(key) = self.key.clone().or_else(|| home.as_ref().map(|h| h.join(CLIENT_KEY_DEFAULT))) else {
            return Err(Error::invalid("sslkey", "certificate present, but no private key file"));
        };
        let meta = std::fs::metadata(&key).map_err(|_| {
            Error::invalid("sslkey", format!("certificate present, but not private key file \"{}\"", key.display()))
        })?;
        if !meta.is_file() {
            return Err(Error::invalid(
                "sslkey",
                format!("private key file \"{}\" is not a regular file", key.display()),
            ));
        }
        check_key_permissions(&key, &meta)?;
        let certs = read_certs("sslcert", &cert)?;
        // The key's parse error would not quote it, but say nothing of it anyway.
        let der = PrivateKeyDer::from_pem_file(&key).map_err(|_| {
            Error::invalid("sslkey", format!("{}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it", key.display()))
        })?;
        Ok(Some((certs, der, key)))
    }
}

/// libpq's rule: a key owned by root may be 0640 or less, any other 0600.
#[cfg(unix)]
fn check_key_permissions(key: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let mode = meta.mode();
    let loose = if meta.uid() == 0 { mode & 0o037 != 0 } else { mode & 0o077 != 0 };
    if loose {
        return Err(Error::invalid(
            "sslkey",
            format!(
                "private key file \"{}\" has group or world access; file must have permissions u=rw (0600) or \
                 less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
                key.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_permissions(_key: &Path, _meta: &std::fs::Metadata) -> Result<()> {
    Ok(())
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

fn read_certs(option: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::invalid(option, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::invalid(option, format!("{}: no PEM certificate in it", path.display())));
    }
    Ok(certs)
}

/// The connector every skiplock connection uses: rustls, configured from a
/// [`TlsConfig`]. A `MakeTlsConnect` for tokio-postgres and deadpool, so a
/// pool or connection of your own can use the same settings.
///
/// # Example: a deadpool pool of your own, with the URL's TLS settings
///
/// ```no_run
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let (pg, tls) = skiplock::TlsConfig::from_url("postgres://app@db/app?sslmode=verify-full")?;
/// let manager = deadpool_postgres::Manager::new(pg, tls.connector()?);
/// let pool = deadpool_postgres::Pool::builder(manager).max_size(4).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConnector {
    inner: tokio_postgres_rustls::MakeRustlsConnect,
    mode: SslMode,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// The `sslmode` this connector was built for.
    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    /// Opens one connection with `pg` (its `ssl_mode` as
    /// [`TlsConfig::from_url`] set it) and this connector, and drives it on
    /// a spawned task until the client is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] naming the cause when TLS is why it failed, else as
    /// a pooled connection's ([`Error::Transient`], [`Error::Database`]).
    ///
    /// # Example: a connection with session settings of your own
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut pg, tls) = skiplock::TlsConfig::from_url("postgres://app@db/app?sslmode=require")?;
    /// pg.application_name("my-report").options("-c statement_timeout=5s");
    /// let client = tls.connector()?.connect(&pg).await?;
    /// client.batch_execute("SELECT 1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(&self, pg: &tokio_postgres::Config) -> Result<tokio_postgres::Client> {
        let (client, connection) = pg.connect(self.clone()).await.map_err(|e| self.explain(Error::from_pg(e, "")))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed");
            }
        });
        Ok(client)
    }

    /// Names TLS as the cause of a connection error where it is: the
    /// server's refusal of a connection without TLS (pg_hba.conf's
    /// `hostssl`) under `sslmode=disable`, and a server that does not offer
    /// TLS to a mode that requires it. Other errors pass unchanged (the
    /// certificate checks explain themselves, see [`Error::from_pg`]).
    pub(crate) fn explain(&self, e: Error) -> Error {
        let source = match e {
            Error::Transient(s) | Error::Database(s) => s,
            other => return other,
        };
        if let Some(db) = source.as_db_error()
            && db.code() == &tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            && db.message().contains("no pg_hba.conf entry")
            && db.message().contains("no encryption")
            && self.mode == SslMode::Disable
        {
            let reason = format!(
                "the server accepts only TLS connections here, and sslmode=disable: set sslmode=require or \
                 stronger ({})",
                db.message()
            );
            return Error::Tls { reason, source: Some(source) };
        }
        if chain_mentions(&source, "server does not support TLS") {
            let reason = format!("the server does not offer TLS, and sslmode={} requires it", self.mode);
            return Error::Tls { reason, source: Some(source) };
        }
        Error::from_pg(source, "")
    }
}

impl MakeTlsConnect<Socket> for TlsConnector {
    type Stream = <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;
    type TlsConnect = <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;
    type Error = <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<Socket>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> std::result::Result<Self::TlsConnect, Self::Error> {
        MakeTlsConnect::<Socket>::make_tls_connect(&mut self.inner, domain)
    }
}

/// Opens one connection to `url` with skiplock's TLS settings (the URL's
/// `sslmode`, `sslrootcert`, `sslcert`, `sslkey`), for statements of your
/// own beside a [`Client`](crate::Client): tools, benchmarks, checks. The
/// connection is driven on a spawned task until the client is dropped.
/// [`ClientBuilder::connect_single`](crate::ClientBuilder::connect_single)
/// does the same with a builder's settings.
///
/// # Errors
///
/// [`Error::InvalidInput`] for a URL or TLS file that is wrong, [`Error::Tls`]
/// naming the cause when the TLS connection fails, else as a pooled
/// connection's errors ([`Error::Transient`], [`Error::Database`]).
///
/// # Example: a check in SQL over the same TLS as the queue
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let pg = skiplock::connect_raw("postgres://app@db.internal/app?sslmode=verify-full").await?;
/// let row = pg.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await?;
/// assert!(row.get::<_, bool>(0));
/// # Ok(()) }
/// ```
pub async fn connect_raw(url: &str) -> Result<tokio_postgres::Client> {
    let (pg, tls) = TlsConfig::from_url(url)?;
    tls.connector()?.connect(&pg).await
}

fn chain_mentions(e: &tokio_postgres::Error, text: &str) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if err.to_string().contains(text) {
            return true;
        }
        next = err.source();
    }
    false
}

/// A name as rustls presents it (`DnsName("db")`, `IpAddress(10.0.0.1)`),
/// bare.
fn bare_name(presented: &str) -> &str {
    ["DnsName(", "IpAddress("]
        .iter()
        .find_map(|p| presented.strip_prefix(p).and_then(|r| r.strip_suffix(')')))
        .map_or(presented, |inner| inner.trim_matches('"'))
}

/// Checks the server's certificate as the mode asks, and says why not in
/// words that name the cause.
#[derive(Debug)]
struct Verifier {
    /// The chain and name checker; `None`: no check (prefer and require
    /// without a root file, as libpq).
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    /// What the roots are, for errors: `sslrootcert (/path)`.
    roots: String,
    mode: SslMode,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl Verifier {
    fn new(
        roots: Option<(rustls::RootCertStore, String)>,
        mode: SslMode,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Verifier> {
        let (webpki, roots) = match roots {
            Some((store, name)) => {
                let v = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()
                    .map_err(|e| Error::invalid("sslrootcert", e))?;
                (Some(v), name)
            }
            None => (None, String::new()),
        };
        Ok(Verifier { webpki, roots, mode, provider })
    }

    fn refuse(&self, e: rustls::Error, server_name: &ServerName<'_>) -> rustls::Error {
        let host = server_name.to_str();
        let reason = match &e {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                    "the server's certificate is not signed by a CA in {} (sslmode={}, host {host})",
                    self.roots, self.mode
                ),
                CertificateError::NotValidForNameContext { presented, .. } => format!(
                    "the server's certificate is for host {}, not {host} (sslmode={})",
                    if presented.is_empty() {
                        "(no name)".to_owned()
                    } else {
                        presented.iter().map(|p| bare_name(p)).collect::<Vec<_>>().join(", ")
                    },
                    self.mode
                ),
                CertificateError::NotValidForName => {
                    format!("the server's certificate is not for host {host} (sslmode={})", self.mode)
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    format!("the server's certificate has expired (host {host})")
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    format!("the server's certificate is not valid yet (host {host}); check the clocks")
                }
                other => format!("the server's certificate was refused (host {host}): {other:?}"),
            },
            other => format!("the server's certificate was refused (host {host}): {other}"),
        };
        rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(TlsRefusal(reason)))))
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else { return Ok(ServerCertVerified::assertion()) };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(ok) => Ok(ok),
            // The chain is checked before the name, so a wrong name means a
            // good chain: all that verify-ca (and require or prefer with a
            // root file) asks for.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.mode != SslMode::VerifyFull => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(self.refuse(e, server_name)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Splits a connection string into what tokio-postgres gets (the string
/// without our options, otherwise as written) and our options, decoded.
fn split(url: &str) -> Result<(String, Vec<(String, String)>)> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let (rest, options) = if is_url { split_url(url)? } else { split_key_value(url)? };
    for (key, _) in &options {
        if let Some(refused) = REFUSED.iter().find(|r| *r == key) {
            return Err(Error::invalid(*refused, "this libpq option is not supported by skiplock"));
        }
    }
    Ok((rest, options.into_iter().filter(|(k, _)| OURS.contains(&k.as_str())).collect()))
}

/// The URL form: our options are taken out of the query string.
fn split_url(url: &str) -> Result<(String, Vec<(String, String)>)> {
    let Some((head, query)) = url.split_once('?') else { return Ok((url.to_owned(), Vec::new())) };
    let mut kept = Vec::new();
    let mut options = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k, "database_url")?;
        if OURS.contains(&key.as_str()) || REFUSED.contains(&key.as_str()) {
            options.push((key.clone(), percent_decode(v, &key)?));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() { head.to_owned() } else { format!("{head}?{}", kept.join("&")) };
    Ok((rest, options))
}

fn percent_decode(s: &str, field: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => return Err(Error::invalid(field.to_owned(), "a '%' not followed by two hex digits")),
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Error::invalid(field.to_owned(), "not UTF-8 once percent-decoded"))
}

/// The key-value form (`host=db sslmode='verify-full'`), read as libpq's
/// conninfo parser does: spaces around `=`, values quoted with `'` or bare,
/// backslash escapes in both. Our pairs are cut out; the rest is kept as
/// written (a quoted password stays quoted).
fn split_key_value(s: &str) -> Result<(String, Vec<(String, String)>)> {
    let b = s.as_bytes();
    let ws = |c: u8| c.is_ascii_whitespace();
    let mut i = 0;
    let mut kept = String::new();
    let mut options = Vec::new();
    loop {
        while i < b.len() && ws(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !ws(b[i]) {
            i += 1;
        }
        let key = &s[start..i];
        while i < b.len() && ws(b[i]) {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            // Not ours to judge: tokio-postgres says what is wrong.
            return Ok((s.to_owned(), Vec::new()));
        }
        i += 1;
        while i < b.len() && ws(b[i]) {
            i += 1;
        }
        let mut value = Vec::new();
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(Error::invalid(key.to_owned(), "unterminated quoted string")),
                    Some(b'\\') if i + 1 < b.len() => {
                        value.push(b[i + 1]);
                        i += 2;
                    }
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !ws(b[i]) {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                value.push(b[i]);
                i += 1;
            }
        }
        if OURS.contains(&key) || REFUSED.contains(&key) {
            let value = String::from_utf8(value).map_err(|_| Error::invalid(key.to_owned(), "not UTF-8"))?;
            options.push((key.to_owned(), value));
        } else {
            if !kept.is_empty() {
                kept.push(' ');
            }
            kept.push_str(&s[start..i]);
        }
    }
    Ok((kept, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> (tokio_postgres::Config, TlsConfig) {
        TlsConfig::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn every_option_is_read_from_the_url_form() {
        let (pg, tls) = parse(
            "postgres://ada:s3cret@db.example:6543/app?application_name=x&sslmode=verify-ca&sslrootcert=%2Fetc%2Fca%20dir%2Fca.pem\
             &sslcert=/c.crt&sslkey=/c.key&sslsni=0&target_session_attrs=read-write",
        );
        assert_eq!(tls.ssl_mode(), SslMode::VerifyCa);
        assert_eq!(tls.root_cert(), Some(Path::new("/etc/ca dir/ca.pem")));
        assert_eq!(tls.client_cert(), (Some(Path::new("/c.crt")), Some(Path::new("/c.key"))));
        assert!(!tls.sni);
        assert_eq!(pg.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert_eq!(pg.get_application_name(), Some("x"));
        assert_eq!(pg.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(pg.get_target_session_attrs(), tokio_postgres::config::TargetSessionAttrs::ReadWrite);
    }

    #[test]
    fn every_option_is_read_from_the_key_value_form() {
        let (pg, tls) = parse(
            "host=db port=6543 password='it\\'s secret' sslmode = verify-full sslrootcert='/ca dir/ca.pem' \
             sslcert=/c.crt sslkey=/c\\ key dbname=app",
        );
        assert_eq!(tls.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(tls.root_cert(), Some(Path::new("/ca dir/ca.pem")));
        assert_eq!(tls.client_cert(), (Some(Path::new("/c.crt")), Some(Path::new("/c key"))));
        assert_eq!(pg.get_password(), Some(&b"it's secret"[..]));
        assert_eq!(pg.get_dbname(), Some("app"));
        assert_eq!(pg.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
    }

    #[test]
    fn modes_map_to_what_tokio_postgres_knows() {
        use tokio_postgres::config::SslMode as Pg;
        for (mode, want) in [
            ("disable", Pg::Disable),
            ("prefer", Pg::Prefer),
            ("require", Pg::Require),
            ("verify-ca", Pg::Require),
            ("verify-full", Pg::Require),
        ] {
            let (pg, tls) = parse(&format!("postgres://h/db?sslmode={mode}"));
            assert_eq!((tls.ssl_mode().as_str(), pg.get_ssl_mode()), (mode, want));
            let (pg, tls) = parse(&format!("host=h sslmode={mode}"));
            assert_eq!((tls.ssl_mode().as_str(), pg.get_ssl_mode()), (mode, want));
        }
    }

    #[test]
    fn the_default_is_prefer_and_system_roots_make_it_verify_full() {
        let (pg, tls) = parse("postgres://h/db");
        assert_eq!((tls.ssl_mode(), pg.get_ssl_mode()), (SslMode::Prefer, tokio_postgres::config::SslMode::Prefer));
        assert!(tls.sni);
        let (pg, tls) = parse("postgres://h/db?sslrootcert=system");
        assert_eq!(tls.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(pg.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        let (_, tls) = parse("postgres://h/db?sslrootcert=system&sslmode=require");
        let e = tls.connector().unwrap_err().to_string();
        assert!(e.contains("weak sslmode \"require\" may not be used with sslrootcert=system"), "{e}");
    }

    #[test]
    fn multi_host_urls_pass_through() {
        let (pg, tls) = parse("postgres://u@a:5432,b:5433/db?target_session_attrs=read-write&sslmode=verify-full");
        assert_eq!(pg.get_hosts().len(), 2);
        assert_eq!(pg.get_ports(), [5432, 5433]);
        assert_eq!(tls.ssl_mode(), SslMode::VerifyFull);
        let (pg, _) = parse("host=a,b port=5432,5433 target_session_attrs=read-write sslmode=require");
        assert_eq!(pg.get_hosts().len(), 2);
        assert_eq!(pg.get_target_session_attrs(), tokio_postgres::config::TargetSessionAttrs::ReadWrite);
    }

    #[test]
    fn bad_values_and_unsupported_options_are_refused_by_name_without_the_password() {
        for (url, field) in [
            ("postgres://u:pw@h/db?sslmode=verify", "sslmode"),
            ("postgres://u:pw@h/db?sslmode=allow", "sslmode"),
            ("host=h password=pw sslmode=nope", "sslmode"),
            ("postgres://u:pw@h/db?sslpassword=pw", "sslpassword"),
            ("host=h sslcrl=/x.crl", "sslcrl"),
            ("postgres://u:hunter2@h/db?nonsense=1", "database_url"),
        ] {
            let e = TlsConfig::from_url(url).unwrap_err();
            assert!(matches!(&e, Error::InvalidInput { field: f, .. } if f == field), "{url}: {e:?}");
            assert!(!e.to_string().contains("hunter2") && !e.to_string().contains("pw"), "{e}");
        }
    }

    #[test]
    fn the_rest_of_the_string_reaches_tokio_postgres_as_written() {
        assert_eq!(split_url("postgres://h/db?a=1&sslmode=require&b=2").unwrap().0, "postgres://h/db?a=1&b=2");
        assert_eq!(split_url("postgres://h/db?sslmode=require").unwrap().0, "postgres://h/db");
        assert_eq!(
            split_key_value("host=h  password='a b'  sslmode=require user=u").unwrap().0,
            "host=h password='a b' user=u"
        );
    }

    #[test]
    fn presented_names_are_shown_bare() {
        assert_eq!(bare_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(bare_name("DnsName(\"db.example\")"), "db.example");
        assert_eq!(bare_name("*.example"), "*.example");
    }

    #[test]
    fn verify_modes_need_a_root_file_and_name_it() {
        let e = parse("postgres://h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem").1.connector().unwrap_err();
        let text = e.to_string();
        assert!(text.contains("root certificate file \"/nonexistent/ca.pem\" does not exist"), "{text}");
        // Without verification, a missing file is no error (libpq's prefer and require).
        parse("postgres://h/db?sslmode=require&sslrootcert=/nonexistent/ca.pem").1.connector().unwrap();
    }

    #[test]
    fn a_client_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("skiplock-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("c.crt"), dir.join("c.key"));
        // The key's permissions are checked before either file is read.
        std::fs::write(&cert, "not read either").unwrap();
        std::fs::write(&key, "not read").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut tls = parse("postgres://h/db?sslmode=require").1;
        tls.set_client_cert(cert, key);
        let e = tls.connector().unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(e.contains("has group or world access"), "{e}");
    }
}
