//! Why a server's certificate was refused ([`TlsRefusal`]), and finding it
//! in a driver error's causes ([`cause`]): what `error.rs` needs to name
//! TLS as the cause, without depending on the rest of `tls`.

use std::fmt;

use rustls::CertificateError;

/// The reason a certificate check gave, if one is in `e`'s causes.
pub(crate) fn cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a TlsRefusal> {
    let mut next: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(r) = err.downcast_ref::<TlsRefusal>() {
            return Some(r);
        }
        // tokio-rustls hands rustls's error over inside an io::Error, and
        // rustls's own error gives no source.
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &'a (dyn std::error::Error + 'static));
        if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(o))) =
            inner.and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return o.0.downcast_ref::<TlsRefusal>();
        }
        next = inner.or_else(|| err.source());
    }
    None
}

/// Why the server's certificate was refused, in words that name the cause.
#[derive(Debug)]
pub(crate) struct TlsRefusal(pub String);

impl fmt::Display for TlsRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsRefusal {}
