//! Outbound HTTP of uploaded nodes: each account's policy (set by the hub's
//! operator, the upper bound) and its grants to its nodes (set by the
//! account). A request leaves only when both allow its origin; a node that
//! imports `wasi:http` is accepted only once its account granted it.

use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::catalog::InstalledNode;
use super::error::HubError;
use super::{Hub, require_write};
use crate::core::AccountId;
use crate::hub::store::Caller;
use crate::sandbox::NodeComponent;
use crate::sandbox::http::{HttpAccess, HttpLimits, Origin};

/// Why a node is being loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Loading {
    /// A new upload.
    Upload,
    /// An upload loaded again after a restart.
    Restored,
}

/// The origins stored as text, parsed (they were checked when set; one
/// that no longer parses is dropped, never widened).
fn parsed(stored: Option<Vec<String>>) -> Vec<Origin> {
    stored
        .unwrap_or_default()
        .iter()
        .filter_map(|text| text.parse().ok())
        .collect()
}

impl Hub {
    /// The layers of origins `account`'s node `name` may reach (its
    /// account's policy, then its own grant), or `None` without a grant.
    async fn http_layers(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Option<Vec<Vec<Origin>>>, HubError> {
        let Some(grant) = self.store.http_origins(account, Some(name)).await? else {
            return Ok(None);
        };
        let policy = self.store.http_origins(account, None).await?;
        Ok(Some(vec![parsed(policy), parsed(Some(grant))]))
    }

    fn http_access(&self, account: AccountId, layers: Vec<Vec<Origin>>) -> Arc<HttpAccess> {
        HttpAccess::new(
            &self.outbound,
            &account.to_string(),
            layers,
            HttpLimits::default(),
        )
    }

    /// `component` with the outbound HTTP its account granted it. A node
    /// that imports `wasi:http` without a grant is refused (code and why)
    /// when `Upload`ed; one `Restored` after a restart keeps its place with
    /// every request refused, as before the restart.
    pub(super) async fn with_granted_http(
        &self,
        account: AccountId,
        component: NodeComponent,
        why: Loading,
    ) -> Result<NodeComponent, (String, String)> {
        if !component.imports_http() {
            return Ok(component);
        }
        let name = component.name().to_owned();
        match self.http_layers(account, &name).await {
            Err(err) => Err(("internal".into(), err.to_string())),
            Ok(None) if why == Loading::Restored => Ok(component),
            Ok(None) => Err((
                "http_not_granted".into(),
                format!(
                    "node `{name}` imports wasi:http (outbound HTTP) and this account has not \
                     granted it any origin: grant the origins it calls first, with `node-host \
                     grant {name} ORIGIN... --backend URL` (PUT /api/nodes/{name}/grant), then \
                     upload it again"
                ),
            )),
            Ok(Some(layers)) => Ok(component.with_http(Some(self.http_access(account, layers)))),
        }
    }

    /// Brings an uploaded node's allowed origins up to date with the store
    /// (the operator may have changed the account's policy meanwhile).
    pub(super) async fn refresh_http(
        &self,
        account: AccountId,
        node: &InstalledNode,
    ) -> Result<(), HubError> {
        if let Some(access) = node.component.http() {
            let layers = self
                .http_layers(account, &node.record.name)
                .await?
                .unwrap_or_default();
            access.set_layers(layers);
        }
        Ok(())
    }

    /// `GET /api/nodes/{name}/grant`: the node's grant and the account's
    /// policy above it.
    pub(crate) async fn http_grant(&self, caller: &Caller, name: &str) -> Result<Json, HubError> {
        let grant = self.store.http_origins(caller.account, Some(name)).await?;
        let policy = self.store.http_origins(caller.account, None).await?;
        Ok(json!({
            "node": name,
            "allow": grant.unwrap_or_default(),
            "policy": policy.unwrap_or_default(),
        }))
    }

    /// `PUT /api/nodes/{name}/grant`: lets the account's node `name` (now
    /// or once uploaded) call `allow`, each origin within the account's
    /// policy. Nodes already loaded follow at once.
    pub(crate) async fn set_http_grant(
        &self,
        caller: &Caller,
        name: &str,
        allow: Vec<String>,
    ) -> Result<Json, HubError> {
        require_write(caller)?;
        let mut origins = Vec::with_capacity(allow.len());
        for text in &allow {
            let origin: Origin = text.parse().map_err(|err| HubError::Refused {
                code: "invalid_origin".into(),
                message: format!("{err}"),
            })?;
            origins.push(origin);
        }
        let policy = parsed(self.store.http_origins(caller.account, None).await?);
        if let Some(outside) = origins
            .iter()
            .find(|origin| !policy.iter().any(|allowed| allowed.covers(origin)))
        {
            let shown: Vec<String> = policy.iter().map(Origin::to_string).collect();
            return Err(HubError::Refused {
                code: "origin_not_in_policy".into(),
                message: format!(
                    "{outside} is outside this account's outbound HTTP policy ({}); the hub's \
                     operator widens it with `node-host hub account http {} --allow ORIGIN`",
                    if shown.is_empty() {
                        "which allows nothing".to_owned()
                    } else {
                        format!("which allows {}", shown.join(", "))
                    },
                    caller.account_name
                ),
            });
        }
        let stored: Vec<String> = origins.iter().map(Origin::to_string).collect();
        self.store
            .set_http_origins(caller.account, Some(name), Some(stored.clone()))
            .await?;
        self.regrant(caller.account, name).await?;
        tracing::info!(account = %caller.account_name, node = %name, allow = ?stored, "granted outbound HTTP");
        Ok(json!({"node": name, "allow": stored}))
    }

    /// `DELETE /api/nodes/{name}/grant`: every request of the node is
    /// refused from now on (and its next upload is refused).
    pub(crate) async fn delete_http_grant(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<Json, HubError> {
        require_write(caller)?;
        let removed = self
            .store
            .set_http_origins(caller.account, Some(name), None)
            .await?;
        if !removed {
            return Err(HubError::UnknownNode(format!(
                "node `{name}` has no outbound HTTP grant"
            )));
        }
        self.regrant(caller.account, name).await?;
        tracing::info!(account = %caller.account_name, node = %name, "revoked outbound HTTP");
        Ok(json!({"node": name, "allow": []}))
    }

    /// Gives the installed node `name` its current grant.
    async fn regrant(&self, account: AccountId, name: &str) -> Result<(), HubError> {
        let Some(node) = self.catalog.get(account, name) else {
            return Ok(());
        };
        if !node.component.imports_http() {
            return Ok(());
        }
        let layers = self.http_layers(account, name).await?.unwrap_or_default();
        match node.component.http() {
            Some(access) => access.set_layers(layers),
            None => {
                let component = node
                    .component
                    .with_http(Some(self.http_access(account, layers)));
                self.catalog.install(
                    account,
                    InstalledNode {
                        component: Arc::new(component),
                        record: node.record.clone(),
                    },
                );
            }
        }
        Ok(())
    }
}
