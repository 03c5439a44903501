//! Certificates for TLS clusters, made at start with `rcgen`: a CA of the cluster's own, the
//! server's certificate signed by it, and client certificates on request.
//!
//! ```text
//! <cluster dir>/tls/
//! ├── ca.crt, ca.key            the cluster's CA (the key stays here, to sign client certificates)
//! ├── server.crt, server.key    the server's, for `ClusterTls::server_names`
//! └── client-<user>.{crt,key}   made by `Cluster::client_cert`
//! ```

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};

use crate::Error;
use crate::process::Programs;

/// Default for [`ClusterTls::server_names`]: both ways of naming the loopback.
pub const SERVER_NAMES_DEFAULT: [&str; 2] = ["localhost", "127.0.0.1"];

/// How a TLS cluster is set up: `ssl = on`, a CA and server certificate made for it, and a
/// `pg_hba.conf` that accepts TCP connections with TLS only (`hostssl`; the unix socket stays
/// open, without TLS, for the crate's own set-up connections). Build it with
/// `..Default::default()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTls {
    /// The names the server's certificate is for, as DNS names or IP addresses. Defaults to
    /// [`SERVER_NAMES_DEFAULT`]; a test of host-name checks gives one of them only.
    pub server_names: Vec<String>,
    /// Whether TCP connections must also present a client certificate signed by the
    /// cluster's CA whose common name is the user (`clientcert=verify-full`); make one with
    /// [`Cluster::client_cert`](crate::Cluster::client_cert).
    pub client_certs: bool,
}

impl Default for ClusterTls {
    fn default() -> Self {
        Self { server_names: SERVER_NAMES_DEFAULT.map(str::to_owned).to_vec(), client_certs: false }
    }
}

/// The directory of a cluster's certificates.
pub(crate) fn dir(cluster_dir: &Path) -> PathBuf {
    cluster_dir.join("tls")
}

fn rcgen_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |e| Error::io(what, "(in memory)")(std::io::Error::other(e))
}

/// The CA's parameters; the same every time, so that the CA can be made again from its key to
/// sign more certificates.
fn ca_params(name: &str) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::new(Vec::new()).map_err(rcgen_error("make the CA's parameters"))?;
    params.distinguished_name.push(DnType::CommonName, format!("skiplock-testdb CA {name}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

/// Writes `text` to `path`, readable by its owner only when `secret`, and gives it to the
/// server user.
fn write(path: &Path, text: &str, secret: bool, programs: &Programs) -> Result<(), Error> {
    fs::write(path, text).map_err(Error::io("write", path))?;
    let mode = if secret { 0o600 } else { 0o644 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", path))?;
    programs.chown(path)
}

/// Makes the CA and the server's certificate in `<cluster_dir>/tls`.
pub(crate) fn create(cluster_dir: &Path, opts: &ClusterTls, programs: &Programs) -> Result<(), Error> {
    let tls = dir(cluster_dir);
    fs::create_dir(&tls).map_err(Error::io("create directory", &tls))?;
    programs.chown(&tls)?;
    let name = cluster_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let ca_key = KeyPair::generate().map_err(rcgen_error("make the CA's key"))?;
    let ca = ca_params(&name)?.self_signed(&ca_key).map_err(rcgen_error("sign the CA"))?;
    write(&tls.join("ca.crt"), &ca.pem(), false, programs)?;
    write(&tls.join("ca.key"), &ca_key.serialize_pem(), true, programs)?;

    let key = KeyPair::generate().map_err(rcgen_error("make the server's key"))?;
    let mut params =
        CertificateParams::new(opts.server_names.clone()).map_err(rcgen_error("make the server's parameters"))?;
    params.distinguished_name.push(DnType::CommonName, opts.server_names.first().cloned().unwrap_or_default());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(rcgen_error("sign the server's certificate"))?;
    write(&tls.join("server.crt"), &cert.pem(), false, programs)?;
    write(&tls.join("server.key"), &key.serialize_pem(), true, programs)
}

/// A client certificate for `user` signed by the CA in `<cluster_dir>/tls`, written there,
/// owned by us (the client) with its key readable by us only.
pub(crate) fn client_cert(cluster_dir: &Path, user: &str) -> Result<(PathBuf, PathBuf), Error> {
    let tls = dir(cluster_dir);
    let ca_key_file = tls.join("ca.key");
    let ca_key_pem = fs::read_to_string(&ca_key_file).map_err(Error::io("read", &ca_key_file))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(rcgen_error("read the CA's key"))?;
    let name = cluster_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let ca = ca_params(&name)?.self_signed(&ca_key).map_err(rcgen_error("make the CA again"))?;
    let key = KeyPair::generate().map_err(rcgen_error("make the client's key"))?;
    let mut params = CertificateParams::new(Vec::new()).map_err(rcgen_error("make the client's parameters"))?;
    params.distinguished_name.push(DnType::CommonName, user);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(rcgen_error("sign the client's certificate"))?;
    let safe: String = user.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let (cert_file, key_file) = (tls.join(format!("client-{safe}.crt")), tls.join(format!("client-{safe}.key")));
    fs::write(&cert_file, cert.pem()).map_err(Error::io("write", &cert_file))?;
    fs::write(&key_file, key.serialize_pem()).map_err(Error::io("write", &key_file))?;
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).map_err(Error::io("chmod", &key_file))?;
    Ok((cert_file, key_file))
}

/// Writes a CA certificate that signed nothing of any cluster's to `path`: the wrong
/// `sslrootcert`, for tests of certificate checks.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be written.
///
/// # Example: a root file no server here is signed by
///
/// ```no_run
/// let path = std::env::temp_dir().join("unrelated-ca.crt");
/// skiplock_testdb::write_unrelated_ca(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_unrelated_ca(path: &Path) -> Result<(), Error> {
    let key = KeyPair::generate().map_err(rcgen_error("make a key"))?;
    let ca = ca_params("unrelated")?.self_signed(&key).map_err(rcgen_error("sign a CA"))?;
    fs::write(path, ca.pem()).map_err(Error::io("write", path))
}

/// The `pg_hba.conf` of a TLS cluster: TLS only over TCP, trust on the unix socket.
pub(crate) fn hba(opts: &ClusterTls) -> String {
    let client = if opts.client_certs { " clientcert=verify-full" } else { "" };
    format!(
        "# written by skiplock-testdb: TCP with TLS only\n\
         local all all trust\n\
         local replication all trust\n\
         hostssl all all 127.0.0.1/32 trust{client}\n\
         hostssl all all ::1/128 trust{client}\n\
         hostssl replication all 127.0.0.1/32 trust{client}\n"
    )
}
