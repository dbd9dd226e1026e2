//! Certificates for TLS tests: a CA made for the test, and a certificate it signed.

/// A test CA and a certificate for `names` that it signed.
pub struct Issued {
    /// The CA's certificate (PEM): what a client must trust.
    pub ca_pem: String,
    pub cert: rcgen::Certificate,
    pub key: rcgen::KeyPair,
}

pub fn issue(names: &[&str]) -> Issued {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "opslive test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
    Issued { ca_pem: ca_cert.pem(), cert, key }
}
