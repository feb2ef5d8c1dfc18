//! The bootstrap as the product runs it: the TLSPC crate's bootstrap (re-exported), started from the
//! product's [`Config`]; performs no I/O of its own.

pub use firefly_tlspc::bootstrap::*;

use crate::config::Config;

impl BootstrapConfig for Config {
    fn bootstrap_settings(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, Box<dyn std::error::Error + Send + Sync>> {
        let vaas = &self.bootstrap.vaas;
        Ok(Settings {
            url: vaas.url.clone(),
            client_id: vaas.auth.client_id.clone(),
            private_key_file: vaas.auth.private_key_file.clone(),
            trust_anchor_file: vaas.trust_anchor_file.clone(),
            request_timeout: vaas.request_timeout,
            policy_refresh_interval: vaas.policy_refresh_interval,
            policy_max_staleness: vaas.policy_max_staleness,
            sub_ca_request_deadline: vaas.sub_ca_request_deadline,
            instance_name: self.instance_name(env)?,
            lock_mode: self.signer.lock_mode,
            // Set to subca::POD_CERTIFICATE_ROTATION_FLOOR when pod certificates are enabled.
            rotation_floor: std::time::Duration::ZERO,
        })
    }
}
