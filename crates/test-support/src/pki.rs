//! A real CA hierarchy for tests: root → intermediate(s) → sub-CA, built with rcgen key pairs, and
//! the `SubCa` the issuer signs with.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use firefly::ca::SubCa;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SignatureAlgorithm, SigningKey,
};

/// What to build.
#[derive(Clone)]
pub struct PkiBuilder {
    pub sub_ca_alg: &'static SignatureAlgorithm,
    pub upper_alg: &'static SignatureAlgorithm,
    pub intermediates: usize,
    /// Sub-CA validity relative to now.
    pub sub_ca_not_before: Duration,
    pub sub_ca_lifetime: Duration,
    pub sub_ca_path_len: Option<u8>,
    /// Extra extensions of the sub-CA, as (OID arcs, raw DER content), added as they are.
    pub sub_ca_raw_extensions: Vec<(Vec<u64>, Vec<u8>)>,
}

impl Default for PkiBuilder {
    fn default() -> Self {
        PkiBuilder {
            sub_ca_alg: &rcgen::PKCS_ECDSA_P256_SHA256,
            upper_alg: &rcgen::PKCS_ECDSA_P256_SHA256,
            intermediates: 2,
            sub_ca_not_before: Duration::from_secs(3600),
            sub_ca_lifetime: Duration::from_secs(7 * 24 * 3600),
            sub_ca_path_len: Some(0),
            sub_ca_raw_extensions: Vec::new(),
        }
    }
}

/// The built hierarchy.
pub struct TestPki {
    pub root_der: Vec<u8>,
    pub root_pem: String,
    /// Issuer chain of the sub-CA: its issuer upward, root last.
    pub issuer_chain_der: Vec<Vec<u8>>,
    pub sub_ca_der: Vec<u8>,
    pub sub_ca_key: Arc<KeyPair>,
    pub sub_ca: SubCa,
}

/// A hierarchy whose sub-CA key was supplied by the caller.
pub struct ForeignKeyPki {
    pub root_der: Vec<u8>,
    pub root_pem: String,
    pub issuer_chain_der: Vec<Vec<u8>>,
    pub sub_ca_der: Vec<u8>,
    pub sub_ca: SubCa,
}

fn key_for(alg: &'static SignatureAlgorithm) -> KeyPair {
    if alg == &rcgen::PKCS_RSA_SHA256 {
        KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).expect("RSA key")
    } else {
        KeyPair::generate_for(alg).expect("key")
    }
}

fn ca_params(
    cn: &str,
    path_len: Option<u8>,
    not_before: SystemTime,
    not_after: SystemTime,
) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, "Firefly Test");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.use_authority_key_identifier_extension = true;
    p.not_before = not_before.into();
    p.not_after = not_after.into();
    p
}

impl PkiBuilder {
    pub fn sub_ca_alg(mut self, alg: &'static SignatureAlgorithm) -> Self {
        self.sub_ca_alg = alg;
        self
    }

    pub fn build(&self) -> TestPki {
        self.build_at(SystemTime::now())
    }

    pub fn build_at(&self, now: SystemTime) -> TestPki {
        self.try_build_at(now).expect("SubCa::new")
    }

    /// Builds the hierarchy and returns what `SubCa::new` says about the sub-CA.
    pub fn try_build(&self) -> Result<TestPki, firefly::ca::CaError> {
        self.try_build_at(SystemTime::now())
    }

    pub fn try_build_at(&self, now: SystemTime) -> Result<TestPki, firefly::ca::CaError> {
        let sub_ca_key = Arc::new(key_for(self.sub_ca_alg));
        let built = self.try_build_for(now, sub_ca_key.clone())?;
        Ok(TestPki {
            root_der: built.root_der,
            root_pem: built.root_pem,
            issuer_chain_der: built.issuer_chain_der,
            sub_ca_der: built.sub_ca_der,
            sub_ca_key,
            sub_ca: built.sub_ca,
        })
    }

    /// The same hierarchy with the sub-CA certificate issued for `sub_key` (any signing key,
    /// e.g. the production `LockedKey`); `sub_ca_alg` is ignored.
    pub fn build_for_key(&self, sub_key: Arc<dyn SigningKey + Send + Sync>) -> ForeignKeyPki {
        self.try_build_for(SystemTime::now(), sub_key)
            .expect("SubCa::new")
    }

    fn try_build_for(
        &self,
        now: SystemTime,
        sub_key: Arc<dyn SigningKey + Send + Sync>,
    ) -> Result<ForeignKeyPki, firefly::ca::CaError> {
        let long_ago = now - Duration::from_secs(30 * 24 * 3600);
        let far = now + Duration::from_secs(10 * 365 * 24 * 3600);
        let root_key = key_for(self.upper_alg);
        let root_params = ca_params("Firefly Test Root", None, long_ago, far);
        let root = root_params.self_signed(&root_key).expect("root");
        let mut chain_down: Vec<Vec<u8>> = vec![root.der().to_vec()];
        let mut issuer_params = root_params;
        let mut issuer_key = root_key;
        for i in 0..self.intermediates {
            let key = key_for(self.upper_alg);
            let params = ca_params(
                &format!("Firefly Test Intermediate {}", i + 1),
                None,
                long_ago,
                far,
            );
            let cert = params
                .signed_by(&key, &Issuer::new(issuer_params.clone(), &issuer_key))
                .expect("intermediate");
            chain_down.push(cert.der().to_vec());
            issuer_params = params;
            issuer_key = key;
        }
        let mut sub_params = ca_params(
            "cluster-1 Firefly Sub-CA",
            None,
            now - self.sub_ca_not_before,
            now - self.sub_ca_not_before + self.sub_ca_lifetime,
        );
        sub_params.is_ca = IsCa::Ca(match self.sub_ca_path_len {
            Some(n) => BasicConstraints::Constrained(n),
            None => BasicConstraints::Unconstrained,
        });
        for (oid, content) in &self.sub_ca_raw_extensions {
            sub_params
                .custom_extensions
                .push(rcgen::CustomExtension::from_oid_content(
                    oid,
                    content.clone(),
                ));
        }
        let sub = sub_params
            .signed_by(
                &firefly::ca::subca::SharedKey(sub_key.clone()),
                &Issuer::new(issuer_params, &issuer_key),
            )
            .expect("sub-CA");
        let mut issuer_chain_der: Vec<Vec<u8>> = chain_down.iter().rev().cloned().collect();
        issuer_chain_der.truncate(self.intermediates + 1);
        let sub_ca = SubCa::new(sub.der().to_vec(), issuer_chain_der.clone(), sub_key)?;
        Ok(ForeignKeyPki {
            root_der: chain_down[0].clone(),
            root_pem: root.pem(),
            issuer_chain_der,
            sub_ca_der: sub.der().to_vec(),
            sub_ca,
        })
    }
}
