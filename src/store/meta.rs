//! The `meta` tree: where polling stands (the end of the last window fetched whole) and the
//! last good copy of the org chart.

use super::{Store, StoreError, DIRECTORY, WINDOW_END};
use crate::directory::Directory;

impl Store {
    /// Keeps `directory` as the last good copy of the org chart.
    pub async fn save_directory(&self, directory: &Directory) -> Result<(), StoreError> {
        let value = serde_json::to_vec(directory).map_err(|e| StoreError::Corrupt {
            tree: "meta",
            reason: e.to_string(),
        })?;
        self.meta.insert(DIRECTORY, value)?;
        self.durable().await?;
        Ok(())
    }

    /// The last good copy of the org chart, if one was ever read.
    pub fn directory(&self) -> Result<Option<Directory>, StoreError> {
        self.meta
            .get(DIRECTORY)?
            .map(|v| {
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    tree: "meta",
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    pub fn last_window_end(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .meta
            .get(WINDOW_END)?
            .and_then(|v| v.as_ref().try_into().ok().map(i64::from_be_bytes)))
    }

    /// Records that everything up to `end` was fetched whole. Durable when this returns.
    pub async fn advance_window(&self, end: i64) -> Result<(), StoreError> {
        self.meta.insert(WINDOW_END, &end.to_be_bytes())?;
        self.durable().await?;
        Ok(())
    }
}
