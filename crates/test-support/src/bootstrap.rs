//! Test environment of the bootstrap suites: the real mock TLSPC on loopback, seeded from the
//! shipped seed with adjustments, and a `firefly run` configuration pointing at it.

use std::path::PathBuf;
use std::sync::Arc;

use firefly::bootstrap::{Bootstrap, BootstrapError, SystemClock};
use firefly::config::Config;
use firefly::tlspc_mock::MockServer;
use serde_json::Value;

pub use crate::{API_KEY, SHIPPED_SEED, eventually};

/// Builds a seed and configuration; every knob defaults to the shipped seed's value.
#[derive(Clone, Debug)]
pub struct EnvBuilder {
    pub sub_ca_validity: String,
    pub sub_ca_algorithm: String,
    pub policy_validity: String,
    pub account_algorithm: Option<String>,
    pub faults: Option<Value>,
    pub attach_account: bool,
    pub refresh_interval: String,
    pub max_staleness: String,
    pub request_timeout: String,
    pub sub_ca_deadline: String,
    pub require_fips: bool,
    pub trust_anchor_pem: Option<String>,
}

impl Default for EnvBuilder {
    fn default() -> Self {
        EnvBuilder {
            sub_ca_validity: "P7D".into(),
            sub_ca_algorithm: "EC_P256".into(),
            policy_validity: "PT1H".into(),
            account_algorithm: None,
            faults: None,
            attach_account: true,
            refresh_interval: "1m".into(),
            max_staleness: "30m".into(),
            request_timeout: "5s".into(),
            sub_ca_deadline: "30s".into(),
            require_fips: false,
            trust_anchor_pem: None,
        }
    }
}

/// A running mock and the configuration of an instance that talks to it.
pub struct Env {
    pub mock: MockServer,
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub config_yaml: String,
    pub http: reqwest::Client,
}

impl EnvBuilder {
    pub fn seed_yaml(&self) -> String {
        let mut seed: Value = serde_saphyr::from_str(SHIPPED_SEED).expect("shipped seed parses");
        let provider = &mut seed["subCaProviders"][0];
        provider["validityPeriod"] = self.sub_ca_validity.clone().into();
        provider["keyAlgorithm"] = self.sub_ca_algorithm.clone().into();
        seed["policies"][0]["validityPeriod"] = self.policy_validity.clone().into();
        if let Some(alg) = &self.account_algorithm {
            seed["serviceAccounts"][0]["keyAlgorithm"] = alg.clone().into();
        }
        if let Some(faults) = &self.faults {
            seed["faults"] = faults.clone();
        }
        if !self.attach_account {
            seed["configurations"][0]["serviceAccounts"] = Value::Array(vec![]);
        }
        seed["configurations"][0]["advancedSettings"]["requireFIPSCompliantBuild"] =
            self.require_fips.into();
        serde_saphyr::to_string(&seed).expect("seed serializes")
    }

    pub async fn start(self) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("mock");
        let mock = crate::tlspc_mock::serve(&self.seed_yaml(), Some(&state))
            .await
            .expect("mock starts with a valid seed");
        let anchor_line = match &self.trust_anchor_pem {
            Some(pem) => {
                let path = dir.path().join("anchor.pem");
                std::fs::write(&path, pem).expect("write anchor");
                format!("    trustAnchorFile: {}\n", path.display())
            }
            None => String::new(),
        };
        let config_yaml = format!(
            "bootstrap:\n  vaas:\n    url: {url}\n    auth:\n      clientID: {client}\n      privateKeyFile: {key}\n    csr:\n      instanceNaming: test-node\n{anchor_line}    policyRefreshInterval: {refresh}\n    policyMaxStaleness: {stale}\n    requestTimeout: {timeout}\n    subCaRequestDeadline: {deadline}\nsigner:\n  lockMode: keyPages\nadmin:\n  readinessAddress: 127.0.0.1:0\n  metricsAddress: 127.0.0.1:0\n  chainAddress: 127.0.0.1:0\n",
            url = mock.base_url(),
            client = mock.client_id(),
            key = state.join("svc-acct.key").display(),
            refresh = self.refresh_interval,
            stale = self.max_staleness,
            timeout = self.request_timeout,
            deadline = self.sub_ca_deadline,
        );
        let config = Config::from_yaml_str(&config_yaml).expect("config is valid");
        Env {
            mock,
            dir,
            config,
            config_yaml,
            http: reqwest::Client::new(),
        }
    }
}

impl Env {
    pub async fn bootstrap(&self) -> Result<Bootstrap, BootstrapError> {
        Bootstrap::start(&self.config, Arc::new(SystemClock)).await
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("mock").join("svc-acct.key")
    }

    /// An admin call with the API key; panics on a non-2xx answer.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.mock.base_url()))
            .header("tppl-api-key", API_KEY);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("admin call");
        let status = resp.status();
        let text = resp.text().await.expect("admin body");
        assert!(status.is_success(), "admin {path}: {status} {text}");
        if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).expect("admin json")
        }
    }

    /// Replaces the mock's fault knobs.
    pub fn set_faults(&self, faults: serde_json::Value) {
        self.mock
            .set_faults(serde_json::from_value(faults).expect("faults parse"))
            .expect("faults valid");
    }
}
