//! Node versions and the kept event history, in SQLite: see the methods of
//! the same names on [`Store`](super::Store).

use rusqlite::{OptionalExtension as _, ToSql, params};

use super::{
    Database, HistoryEvent, HistoryQuery, HistoryWrite, Prune, PutVersion, StoreError, sql,
};
use crate::hub::store::UploadedNode;

impl Database {
    /// See [`Store::put_uploaded`](super::Store::put_uploaded).
    pub(super) fn put_uploaded(
        &mut self,
        account: i64,
        node: &UploadedNode,
        keep: usize,
    ) -> Result<PutVersion, StoreError> {
        let tx = self.db.transaction().map_err(sql("begin an upload"))?;
        let current: Option<(String, i64)> = tx
            .query_row(
                "SELECT sha256, version FROM uploaded_nodes WHERE account_id = ?1 AND name = ?2",
                params![account, node.name],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(sql("look up the current version"))?;
        if let Some((sha256, version)) = current
            && sha256 == node.sha256
        {
            // The same bytes again: still the same version.
            return Ok(PutVersion {
                version,
                dropped: Vec::new(),
            });
        }
        let version: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM node_versions
                 WHERE account_id = ?1 AND name = ?2",
                params![account, node.name],
                |row| row.get(0),
            )
            .map_err(sql("number a new version"))?;
        let size = node.size as i64;
        tx.execute(
            "INSERT INTO node_versions (account_id, name, version, sha256, size, uploaded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                account,
                node.name,
                version,
                node.sha256,
                size,
                node.uploaded_at
            ],
        )
        .map_err(sql("store a version"))?;
        tx.execute(
            "INSERT OR REPLACE INTO uploaded_nodes
                 (account_id, name, sha256, size, uploaded_at, version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                account,
                node.name,
                node.sha256,
                size,
                node.uploaded_at,
                version
            ],
        )
        .map_err(sql("store uploaded node"))?;
        let dropped: Vec<(i64, String)> = {
            let mut statement = tx
                .prepare(
                    "SELECT version, sha256 FROM node_versions
                     WHERE account_id = ?1 AND name = ?2 AND version <> ?3
                     ORDER BY version DESC LIMIT -1 OFFSET ?4",
                )
                .map_err(sql("prepare version pruning"))?;
            let rows = statement
                .query_map(
                    params![account, node.name, version, keep.max(1) as i64 - 1],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(sql("find versions beyond the kept count"))?;
            rows.collect::<Result<_, _>>()
                .map_err(sql("read a version"))?
        };
        for (old, _) in &dropped {
            tx.execute(
                "DELETE FROM node_versions WHERE account_id = ?1 AND name = ?2 AND version = ?3",
                params![account, node.name, old],
            )
            .map_err(sql("remove an old version"))?;
        }
        tx.commit().map_err(sql("commit an upload"))?;
        Ok(PutVersion {
            version,
            dropped: dropped.into_iter().map(|(_, sha256)| sha256).collect(),
        })
    }

    /// See [`Store::versions`](super::Store::versions).
    pub(super) fn versions(
        &self,
        account: i64,
        name: &str,
    ) -> Result<Vec<UploadedNode>, StoreError> {
        let mut statement = self
            .db
            .prepare_cached(
                "SELECT version, sha256, size, uploaded_at FROM node_versions
                 WHERE account_id = ?1 AND name = ?2 ORDER BY version DESC",
            )
            .map_err(sql("prepare the version listing"))?;
        let rows = statement
            .query_map(params![account, name], |row| {
                Ok(UploadedNode {
                    name: name.to_owned(),
                    version: row.get(0)?,
                    sha256: row.get(1)?,
                    size: row.get::<_, i64>(2)? as u64,
                    uploaded_at: row.get(3)?,
                })
            })
            .map_err(sql("list versions"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read a version"))
    }

    /// See [`Store::make_current`](super::Store::make_current).
    pub(super) fn make_current(
        &mut self,
        account: i64,
        name: &str,
        version: i64,
    ) -> Result<Option<UploadedNode>, StoreError> {
        let kept = self
            .versions(account, name)?
            .into_iter()
            .find(|kept| kept.version == version);
        let Some(kept) = kept else {
            return Ok(None);
        };
        let updated = self
            .db
            .execute(
                "UPDATE uploaded_nodes SET sha256 = ?3, size = ?4, uploaded_at = ?5, version = ?6
                 WHERE account_id = ?1 AND name = ?2",
                params![
                    account,
                    name,
                    kept.sha256,
                    kept.size as i64,
                    kept.uploaded_at,
                    kept.version
                ],
            )
            .map_err(sql("make a version current"))?;
        Ok((updated > 0).then_some(kept))
    }

    /// See [`Store::delete_uploaded`](super::Store::delete_uploaded).
    pub(super) fn delete_uploaded(
        &mut self,
        account: i64,
        name: &str,
    ) -> Result<Vec<String>, StoreError> {
        let tx = self.db.transaction().map_err(sql("begin a delete"))?;
        let mut used: Vec<String> = {
            let mut statement = tx
                .prepare(
                    "SELECT sha256 FROM uploaded_nodes WHERE account_id = ?1 AND name = ?2
                     UNION SELECT sha256 FROM node_versions WHERE account_id = ?1 AND name = ?2",
                )
                .map_err(sql("prepare a delete"))?;
            let rows = statement
                .query_map(params![account, name], |row| row.get(0))
                .map_err(sql("list the versions to delete"))?;
            rows.collect::<Result<_, _>>()
                .map_err(sql("read a version"))?
        };
        let deleted = tx
            .execute(
                "DELETE FROM uploaded_nodes WHERE account_id = ?1 AND name = ?2",
                params![account, name],
            )
            .map_err(sql("delete uploaded node"))?;
        tx.execute(
            "DELETE FROM node_versions WHERE account_id = ?1 AND name = ?2",
            params![account, name],
        )
        .map_err(sql("delete versions"))?;
        tx.commit().map_err(sql("commit a delete"))?;
        if deleted == 0 {
            used.clear();
        }
        Ok(used)
    }

    /// See [`Store::record_history`](super::Store::record_history).
    pub(super) fn record_history(
        &mut self,
        writes: &[HistoryWrite],
        prune: &[Prune],
    ) -> Result<Vec<i64>, StoreError> {
        let tx = self
            .db
            .transaction()
            .map_err(sql("begin a history write"))?;
        let mut next_id = match self.next_history_id {
            Some(id) => id,
            None => first_history_id(&tx)?,
        };
        let mut ids = Vec::with_capacity(writes.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO event_history (id, account_id, node, uuid, at_ms, caller,
                         outcome, message, duration_us, fuel, version, logs, ran)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .map_err(sql("prepare a history write"))?;
            // The same rule as `HistoryEvent::merge`, in SQL.
            let mut merge = tx
                .prepare_cached(
                    "UPDATE event_history SET
                         caller = COALESCE(?3, caller),
                         outcome = CASE WHEN ?2 OR outcome IS NULL THEN ?4 ELSE outcome END,
                         message = CASE WHEN ?2 OR outcome IS NULL THEN ?5 ELSE message END,
                         duration_us = COALESCE(?6, duration_us),
                         fuel = COALESCE(?7, fuel),
                         version = COALESCE(?8, version),
                         logs = COALESCE(?9, logs),
                         ran = COALESCE(?10, ran)
                     WHERE id = ?1",
                )
                .map_err(sql("prepare a history merge"))?;
            for HistoryWrite { event, into } in writes {
                let id = match into {
                    Some(id) => {
                        let key: [&dyn ToSql; 2] = [id, &event.from_caller];
                        merge
                            .execute(&*[&key[..], &known(event)].concat())
                            .map_err(sql("merge an event into the history"))?;
                        *id
                    }
                    None => {
                        let id = next_id;
                        let key: [&dyn ToSql; 5] =
                            [&id, &event.account, &event.node, &event.uuid, &event.at_ms];
                        insert
                            .execute(&*[&key[..], &known(event)].concat())
                            .map_err(sql("write an event to the history"))?;
                        next_id += 1;
                        id
                    }
                };
                ids.push(id);
            }
            for prune in prune {
                prune_history(&tx, prune)?;
            }
            if Some(next_id) != self.next_history_id {
                tx.execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![NEXT_HISTORY_ID, next_id],
                )
                .map_err(sql("keep the history's next id"))?;
            }
        }
        tx.commit().map_err(sql("commit a history write"))?;
        self.next_history_id = Some(next_id);
        Ok(ids)
    }

    /// See [`Store::history`](super::Store::history).
    pub(super) fn history(
        &self,
        account: i64,
        query: &HistoryQuery,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        // Following (`after`): the oldest newer ones; else the newest.
        let order = if query.after.is_some() { "ASC" } else { "DESC" };
        let mut statement = self
            .db
            .prepare_cached(&format!(
                "SELECT id, node, uuid, at_ms, caller, outcome, message, duration_us, fuel,
                     version, logs, ran
                 FROM event_history
                 WHERE account_id = ?1 AND (?2 IS NULL OR node = ?2) AND id > ?3
                 ORDER BY id {order} LIMIT ?4"
            ))
            .map_err(sql("prepare the history listing"))?;
        let rows = statement
            .query_map(
                params![
                    account,
                    query.node,
                    query.after.unwrap_or(0),
                    i64::from(query.limit)
                ],
                |row| {
                    Ok(HistoryEvent {
                        id: row.get(0)?,
                        account,
                        node: row.get(1)?,
                        uuid: row.get(2)?,
                        at_ms: row.get(3)?,
                        caller: row.get(4)?,
                        outcome: row.get(5)?,
                        message: row.get(6)?,
                        duration_us: row.get(7)?,
                        fuel: row.get(8)?,
                        version: row.get(9)?,
                        logs: row.get(10)?,
                        ran: row.get(11)?,
                        from_caller: false,
                    })
                },
            )
            .map_err(sql("list the history"))?;
        let mut events: Vec<HistoryEvent> = rows
            .collect::<Result<_, _>>()
            .map_err(sql("read an event of the history"))?;
        events.sort_by_key(|event| event.id);
        Ok(events)
    }

    /// See [`Store::history_count`](super::Store::history_count).
    pub(super) fn history_count(&self, account: i64) -> Result<u64, StoreError> {
        self.db
            .query_row(
                "SELECT COUNT(*) FROM event_history WHERE account_id = ?1",
                [account],
                |row| row.get::<_, i64>(0),
            )
            .map(|count| count as u64)
            .map_err(sql("count the history"))
    }

    /// See [`Store::forget_history`](super::Store::forget_history).
    pub(super) fn forget_history(&self, account: i64, node: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "DELETE FROM event_history WHERE account_id = ?1 AND node = ?2",
                params![account, node],
            )
            .map_err(sql("forget a node's history"))?;
        Ok(())
    }

    /// See [`Store::node_config`](super::Store::node_config).
    pub(super) fn node_config(
        &self,
        account: i64,
        node: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut statement = self
            .db
            .prepare_cached(
                "SELECT key, value FROM node_config WHERE account_id = ?1 AND node = ?2
                 ORDER BY key",
            )
            .map_err(sql("prepare the configuration listing"))?;
        let rows = statement
            .query_map(params![account, node], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(sql("list the configuration"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read a configuration value"))
    }

    /// See [`Store::set_node_config`](super::Store::set_node_config).
    pub(super) fn set_node_config(
        &self,
        account: i64,
        node: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<bool, StoreError> {
        let changed = match value {
            Some(value) => self.db.execute(
                "INSERT OR REPLACE INTO node_config (account_id, node, key, value)
                 VALUES (?1, ?2, ?3, ?4)",
                params![account, node, key, value],
            ),
            None => self.db.execute(
                "DELETE FROM node_config WHERE account_id = ?1 AND node = ?2 AND key = ?3",
                params![account, node, key],
            ),
        }
        .map_err(sql("set a configuration value"))?;
        Ok(changed > 0)
    }
}

/// The setting that holds the id the next history row takes: rows are
/// numbered by the hub, not by SQLite's `AUTOINCREMENT` (which updated a
/// table of its own at every insert), and an id is never given twice, even
/// after the newest rows were deleted (a follower's `after` and the
/// writer's merges name rows by id).
const NEXT_HISTORY_ID: &str = "event_history.next_id";

/// The id the next history row takes: past every row there is and every
/// id ever given.
fn first_history_id(tx: &rusqlite::Transaction<'_>) -> Result<i64, StoreError> {
    tx.query_row(
        "SELECT MAX(
             COALESCE((SELECT value FROM settings WHERE key = ?1), 1),
             COALESCE((SELECT MAX(id) + 1 FROM event_history), 1))",
        params![NEXT_HISTORY_ID],
        |row| row.get(0),
    )
    .map_err(sql("read the history's next id"))
}

/// What a record may know of its event, in the order both history
/// statements bind it after their keys.
fn known(event: &HistoryEvent) -> [&dyn ToSql; 8] {
    [
        &event.caller,
        &event.outcome,
        &event.message,
        &event.duration_us,
        &event.fuel,
        &event.version,
        &event.logs,
        &event.ran,
    ]
}

/// Keeps the account's newest `newest` events (when given), none older
/// than `max_age_s`: two deletes along the `(account_id, id)` index (an
/// `OR` of both would make SQLite collect the rows first). The count walks
/// the rows it keeps; the age visits only what it deletes and a row past it.
fn prune_history(tx: &rusqlite::Transaction<'_>, prune: &Prune) -> Result<(), StoreError> {
    let Prune {
        account,
        max_age_s,
        newest,
    } = *prune;
    let oldest = crate::hub::store::unix_millis() - max_age_s * 1000;
    if let Some(newest) = newest {
        let keep = newest.min(i64::MAX as u64) as i64;
        tx.prepare_cached(
            "DELETE FROM event_history WHERE account_id = ?1 AND id <= COALESCE(
                 (SELECT id FROM event_history WHERE account_id = ?1
                      ORDER BY id DESC LIMIT 1 OFFSET ?2), 0)",
        )
        .map_err(sql("prepare history pruning"))?
        .execute(params![account, keep])
        .map_err(sql("prune the history"))?;
    }
    // See `Store::record_history`: by id up to the first young event, so
    // that only the rows deleted are visited, never the whole account.
    tx.prepare_cached(
        "DELETE FROM event_history WHERE account_id = ?1 AND id < COALESCE(
             (SELECT id FROM event_history WHERE account_id = ?1 AND at_ms >= ?2
                  ORDER BY id LIMIT 1), 9223372036854775807)",
    )
    .map_err(sql("prepare history pruning"))?
    .execute(params![account, oldest])
    .map_err(sql("prune the history by age"))?;
    Ok(())
}
