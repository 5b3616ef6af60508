//! A throwaway certificate authority for TLS tests: it issues server and
//! client certificates and writes them as the PEM files that the binaries
//! read. Built only with the `test-pki` feature.
//!
//! Keys are ECDSA P-256, generated per call, and certificates are valid
//! from 1975 to 4096 (rcgen's defaults).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::tls::IdentityFiles;

/// A self-signed CA.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its private key, as PEM text.
pub struct IssuedCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// Creates a CA whose certificate's common name is `name`.
    pub fn new(name: &str) -> Self {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).expect("empty names are valid");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generate a CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-sign the CA");
        Self { issuer }
    }

    /// Returns the CA certificate as PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Issues a server certificate for `names`: DNS names, or IP addresses
    /// such as `127.0.0.1`.
    pub fn issue_server(&self, names: &[&str]) -> IssuedCertificate {
        self.issue(names, &[ExtendedKeyUsagePurpose::ServerAuth])
    }

    /// Issues a client certificate whose common name and DNS name are `name`.
    pub fn issue_client(&self, name: &str) -> IssuedCertificate {
        self.issue(&[name], &[ExtendedKeyUsagePurpose::ClientAuth])
    }

    /// Issues a certificate for both uses, as a service that also calls
    /// another one (order-svc) holds.
    pub fn issue_server_and_client(&self, names: &[&str]) -> IssuedCertificate {
        self.issue(
            names,
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    fn issue(&self, names: &[&str], usages: &[ExtendedKeyUsagePurpose]) -> IssuedCertificate {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("valid subject names");
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages.to_vec();
        let key = KeyPair::generate().expect("generate a key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the certificate");
        IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes the CA certificate to `folder/NAME.crt` and returns the path.
    pub fn write(&self, folder: &Path, name: &str) -> PathBuf {
        let path = folder.join(format!("{name}.crt"));
        std::fs::write(&path, self.cert_pem()).expect("write the CA certificate");
        path
    }
}

impl IssuedCertificate {
    /// Writes `folder/NAME.crt` and `folder/NAME.key` and returns their paths.
    pub fn write(&self, folder: &Path, name: &str) -> IdentityFiles {
        let cert = folder.join(format!("{name}.crt"));
        let key = folder.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write the certificate");
        std::fs::write(&key, &self.key_pem).expect("write the private key");
        IdentityFiles { cert, key }
    }
}
