//! An account's secrets: stored sealed, listed by name only (no API ever
//! returns a value), and opened only for the events of a node that declares
//! them.

use std::collections::HashMap;

use serde_json::{Value as Json, json};

use super::{Hub, HubError, require_write};
use crate::core::AccountId;
use crate::hub::secrets::{MAX_SECRET_BYTES, valid_secret_name};
use crate::hub::store::Caller;
use crate::sandbox::NodeInfo;

impl Hub {
    /// Stores the caller's secret `name`, sealed.
    pub(crate) async fn put_secret(
        &self,
        caller: &Caller,
        name: &str,
        value: &str,
    ) -> Result<Json, HubError> {
        require_write(caller)?;
        check_name(name)?;
        if value.len() > MAX_SECRET_BYTES {
            return Err(HubError::TooLarge(format!(
                "a secret holds at most {} KiB",
                MAX_SECRET_BYTES >> 10
            )));
        }
        let sealed = self.secrets.seal(caller.account, name, value);
        self.store.put_secret(caller.account, name, &sealed).await?;
        tracing::info!(account = %caller.account_name, secret = %name, "secret set");
        Ok(json!({"name": name, "status": "stored"}))
    }

    /// Deletes the caller's secret `name`.
    pub(crate) async fn delete_secret(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<Json, HubError> {
        require_write(caller)?;
        check_name(name)?;
        if !self.store.delete_secret(caller.account, name).await? {
            return Err(HubError::UnknownSecret(name.to_owned()));
        }
        Ok(json!({"deleted": name}))
    }

    /// The names of the caller's secrets and when each was set.
    pub(crate) async fn secret_names(&self, caller: &Caller) -> Result<Json, HubError> {
        let names = self.store.secret_names(caller.account).await?;
        let secrets: Vec<Json> = names
            .into_iter()
            .map(|(name, updated_at)| json!({"name": name, "updated_at": updated_at}))
            .collect();
        Ok(json!({ "secrets": secrets }))
    }

    /// The values of those of `names` that `account` has set.
    pub(crate) async fn secret_values(
        &self,
        account: AccountId,
        names: &[String],
    ) -> Result<HashMap<String, String>, HubError> {
        let mut values = HashMap::new();
        for name in names {
            let Some(sealed) = self.store.secret(account, name).await? else {
                continue;
            };
            let value = self
                .secrets
                .open_value(account, name, &sealed)
                .map_err(|err| {
                    tracing::error!("{err}");
                    HubError::SecretUnavailable(err.to_string())
                })?;
            values.insert(name.clone(), value);
        }
        Ok(values)
    }

    /// The values of the secrets `info` declares: from the node's own
    /// configuration where it sets the name (the more specific), else the
    /// account's secret of that name, if set. A node that declares none
    /// costs no query.
    pub(super) async fn declared_secrets(
        &self,
        account: AccountId,
        node: &str,
        info: &NodeInfo,
    ) -> Result<HashMap<String, String>, HubError> {
        if info.secrets.is_empty() {
            return Ok(HashMap::new());
        }
        let config: HashMap<String, String> = self
            .store
            .node_config(account, node)
            .await?
            .into_iter()
            .filter(|(key, _)| info.secrets.contains(key))
            .collect();
        let sealed: Vec<String> = info
            .secrets
            .iter()
            .filter(|name| !config.contains_key(*name))
            .cloned()
            .collect();
        let mut values = self.secret_values(account, &sealed).await?;
        values.extend(config);
        Ok(values)
    }

    /// `GET /api/nodes/{name}/config`: the node's configuration, by key.
    pub(crate) async fn node_config(&self, caller: &Caller, name: &str) -> Result<Json, HubError> {
        let config: serde_json::Map<String, Json> = self
            .store
            .node_config(caller.account, name)
            .await?
            .into_iter()
            .map(|(key, value)| (key, Json::String(value)))
            .collect();
        Ok(json!({"node": name, "config": config}))
    }

    /// Sets (`Some`) or removes (`None`) the configuration `key` of the
    /// caller's node `name` (uploaded or not yet): what the node reads with
    /// `host.secret(key)` when it declares `key`, visible to the account.
    pub(crate) async fn set_node_config(
        &self,
        caller: &Caller,
        name: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<Json, HubError> {
        require_write(caller)?;
        if !crate::sandbox::valid_node_name(name) {
            return Err(HubError::InvalidRequest(format!(
                "invalid node name `{name}`: it must not be blank or contain `/`"
            )));
        }
        if !valid_secret_name(key) {
            return Err(HubError::InvalidRequest(format!(
                "invalid configuration key `{key}`: use 1 to 128 letters, digits, `-`, `_` or `.`"
            )));
        }
        if let Some(value) = value {
            if value.len() > MAX_CONFIG_BYTES {
                return Err(HubError::TooLarge(format!(
                    "the value of `{key}` is {} bytes; a configuration value may have {} (keep \
                     big data out of the configuration)",
                    value.len(),
                    MAX_CONFIG_BYTES
                )));
            }
            let kept = self.store.node_config(caller.account, name).await?;
            if kept.len() >= MAX_CONFIG_KEYS && !kept.iter().any(|(kept, _)| kept == key) {
                return Err(HubError::AccountLimit(format!(
                    "node `{name}` has {MAX_CONFIG_KEYS} configuration keys, as many as it may; \
                     remove one first"
                )));
            }
        }
        let changed = self
            .store
            .set_node_config(caller.account, name, key, value)
            .await?;
        if value.is_none() && !changed {
            return Err(HubError::InvalidRequest(format!(
                "node `{name}` has no configuration key `{key}`"
            )));
        }
        self.node_config(caller, name).await
    }
}

/// The longest configuration value, in bytes.
pub const MAX_CONFIG_BYTES: usize = 4096;

/// Configuration keys per node at most.
pub const MAX_CONFIG_KEYS: usize = 64;

fn check_name(name: &str) -> Result<(), HubError> {
    match valid_secret_name(name) {
        true => Ok(()),
        false => Err(HubError::InvalidRequest(format!(
            "invalid secret name `{name}`: use 1 to 128 letters, digits, `-`, `_` or `.`"
        ))),
    }
}
