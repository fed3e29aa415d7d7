//! The versions of an uploaded node: listing them and going back to one.
//!
//! Every upload of a name is a new immutable version (its component's
//! sha256); the store keeps the newest few of each node (`--keep-versions`)
//! with their components, and a rollback makes a kept one current again.
//! Its component is loaded (from the compile cache, usually) before the
//! store is switched, so a version that cannot run never becomes current.

use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::catalog::InstalledNode;
use super::{Hub, HubError, StoredLoadError, require_write};
use crate::hub::store::{Caller, UploadedNode};

impl Hub {
    /// The kept versions of the caller's node `name`, newest first.
    pub(crate) async fn node_versions(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
    ) -> Result<Json, HubError> {
        let node = self.installed(caller, name).await?;
        let versions = self.store.versions(caller.account, name).await?;
        Ok(json!({
            "node": name,
            "current": node.record.version,
            "versions": versions
                .iter()
                .map(|version| version_json(version, node.record.version))
                .collect::<Vec<_>>(),
        }))
    }

    /// Makes the kept `version` of the caller's node `name` the one its
    /// events run; answers the node as `GET /api/nodes/{name}` shows it.
    pub(crate) async fn rollback(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
        version: i64,
    ) -> Result<Json, HubError> {
        require_write(caller)?;
        let account = caller.account;
        let current = self.installed(caller, name).await?;
        if current.record.version == version {
            return Ok(current.to_json());
        }
        let versions = self.store.versions(account, name).await?;
        let unknown = || HubError::UnknownVersion {
            node: name.to_owned(),
            version,
            kept: versions
                .iter()
                .map(|kept| kept.version.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let target = versions
            .iter()
            .find(|kept| kept.version == version)
            .cloned()
            .ok_or_else(unknown)?;
        let component = match self.load_stored(account, &target.sha256).await {
            Ok((component, _compiled)) => component,
            Err(StoredLoadError::Read(why)) => return Err(HubError::internal(why)),
            Err(StoredLoadError::Load(err)) => return Err(HubError::refused(&err)),
            Err(StoredLoadError::Grant { code, message }) => {
                return Err(HubError::Refused { code, message });
            }
        };
        let record = self
            .store
            .make_current(account, name, version)
            .await?
            .ok_or_else(unknown)?;
        let sha256 = record.sha256.clone();
        let node = InstalledNode {
            component: Arc::new(component),
            record,
        };
        let shown = node.to_json();
        self.catalog.install(account, node);
        self.announce(&sha256);
        tracing::info!(account = %caller.account_name, node = %name, version, sha256, "rolled back an uploaded node");
        Ok(shown)
    }
}

fn version_json(version: &UploadedNode, current: i64) -> Json {
    json!({
        "version": version.version,
        "sha256": version.sha256,
        "size": version.size,
        "uploaded_at": version.uploaded_at,
        "current": version.version == current,
    })
}
