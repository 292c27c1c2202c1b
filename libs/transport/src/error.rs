use std::path::PathBuf;

/// Why TLS material could not be loaded, parsed or issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written. The cause is part of the message, not a
    /// separate source, so a cause chain names it once.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A file holds no usable PEM certificate or key.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: &'static str,
    },
    /// A SPIFFE ID that does not follow `spiffe://{trust-domain}/{path}`.
    #[error("invalid SPIFFE ID: {0}")]
    SpiffeId(&'static str),
    /// A certificate file exists but holds another identity than the one asked for.
    #[error("{path} already holds the certificate of {holds}")]
    Occupied {
        /// The file.
        path: PathBuf,
        /// Whose certificate it is.
        holds: String,
    },
    /// A certificate file holds the identity asked for, but not the usage or host names.
    #[error(
        "{path} holds a certificate of this identity without {lacks}; remove it (and its key) to issue a new one"
    )]
    Lacking {
        /// The file.
        path: PathBuf,
        /// What it lacks: server usage, or a host name.
        lacks: String,
    },
    /// A client certificate was asked for with host names, which only servers carry.
    #[error("host names are for server certificates only")]
    HostsOnClient,
    /// Another service could not be reached, or did not prove it is the expected one.
    #[error("cannot connect to {url}: {why}")]
    Upstream {
        /// Where.
        url: String,
        /// Why (no secrets: names, addresses and TLS errors only).
        why: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |cause| Self::Io {
            path: path.to_owned(),
            cause,
        }
    }
}
