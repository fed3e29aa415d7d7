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

    /// The values of the secrets `info` declares that `account` has set.
    pub(super) async fn declared_secrets(
        &self,
        account: AccountId,
        info: &NodeInfo,
    ) -> Result<HashMap<String, String>, HubError> {
        self.secret_values(account, &info.secrets).await
    }
}

fn check_name(name: &str) -> Result<(), HubError> {
    match valid_secret_name(name) {
        true => Ok(()),
        false => Err(HubError::InvalidRequest(format!(
            "invalid secret name `{name}`: use 1 to 128 letters, digits, `-`, `_` or `.`"
        ))),
    }
}
