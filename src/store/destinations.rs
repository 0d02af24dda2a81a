//! The `destinations` tree: per destination, why its deliveries wait (a refusal, a fault,
//! skipped losses) and when to try again; absent while it takes messages.

use std::collections::BTreeMap;

use super::outbox::parse_id;
use super::{DestinationState, Store, StoreError};
use crate::destination::DestinationId;

impl Store {
    pub fn destination_state(
        &self,
        destination: &DestinationId,
    ) -> Result<Option<DestinationState>, StoreError> {
        self.destinations
            .get(destination.to_string())?
            .map(|v| {
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    tree: "destinations",
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    pub fn destination_states(
        &self,
    ) -> Result<BTreeMap<DestinationId, DestinationState>, StoreError> {
        let mut states = BTreeMap::new();
        for item in self.destinations.iter() {
            let (key, value) = item?;
            let state = serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt {
                tree: "destinations",
                reason: e.to_string(),
            })?;
            states.insert(parse_id("destinations", &key)?, state);
        }
        Ok(states)
    }

    pub async fn set_destination_state(
        &self,
        destination: &DestinationId,
        state: &DestinationState,
    ) -> Result<(), StoreError> {
        let value = serde_json::to_vec(state).map_err(|e| StoreError::Corrupt {
            tree: "destinations",
            reason: e.to_string(),
        })?;
        self.destinations.insert(destination.to_string(), value)?;
        self.durable().await?;
        Ok(())
    }

    pub async fn clear_destination_state(
        &self,
        destination: &DestinationId,
    ) -> Result<bool, StoreError> {
        let existed = self.destinations.remove(destination.to_string())?.is_some();
        if existed {
            self.durable().await?;
        }
        Ok(existed)
    }
}
