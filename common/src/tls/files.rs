//! Reading the PEM files and turning them into rustls types, with an error
//! that names the file for every way a file can be wrong.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::{FileKind, IdentityFiles, TlsError};

/// Returns the crypto provider of every configuration: ring.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a whole file.
pub(crate) fn read(kind: FileKind, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        kind,
        path: path.to_owned(),
        source,
    })
}

/// Parses every certificate of a PEM file; at least one is required.
pub(crate) fn certificates(
    kind: FileKind,
    path: &Path,
    contents: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(contents)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid_pem(kind, path, &error))?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            kind,
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

/// Parses the first private key of a PEM file.
pub(crate) fn private_key(
    path: &Path,
    contents: &[u8],
) -> Result<PrivateKeyDer<'static>, TlsError> {
    match PrivateKeyDer::from_pem_slice(contents) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey {
            path: path.to_owned(),
        }),
        Err(error) => Err(invalid_pem(FileKind::PrivateKey, path, &error)),
    }
}

/// Parses a certificate chain and its key, and checks that they belong
/// together.
pub(crate) fn certified_key(
    files: &IdentityFiles,
    cert_contents: &[u8],
    key_contents: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(FileKind::Certificate, &files.cert, cert_contents)?;
    let key = private_key(&files.key, key_contents)?;
    let provider = provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::UnsupportedKey {
            path: files.key.clone(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        // The ring provider reports the public key of every key type it
        // loads, so any other error is a certificate that does not parse.
        Err(source) => Err(TlsError::InvalidCertificate {
            path: files.cert.clone(),
            source,
        }),
    }
}

/// Parses a PEM file of CA certificates into a trust store.
pub(crate) fn root_store(path: &Path, contents: &[u8]) -> Result<RootCertStore, TlsError> {
    let certificates = certificates(FileKind::CaCertificates, path, contents)?;
    let mut store = RootCertStore::empty();
    for (position, certificate) in certificates.into_iter().enumerate() {
        store
            .add(certificate)
            .map_err(|source| TlsError::InvalidCaCertificate {
                path: path.to_owned(),
                index: position + 1,
                source,
            })?;
    }
    Ok(store)
}

fn invalid_pem(kind: FileKind, path: &Path, error: &pem::Error) -> TlsError {
    TlsError::InvalidPem {
        kind,
        path: path.to_owned(),
        message: error.to_string(),
    }
}
