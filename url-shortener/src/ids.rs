//! Generated codes: unique IDs leased in blocks from the database, permuted, base62-encoded.
//!
//! Each instance leases a block of IDs (1,000 by default) with one atomic update of a counter row,
//! then hands them out from memory. The database is touched once per block rather than once per
//! link, and instances never coordinate with each other: their blocks are disjoint by
//! construction. An instance that stops throws away the rest of its block; with 3.5 trillion
//! codes that waste does not matter.
//!
//! Each ID then goes through the keyed [`Permutation`] so that consecutive links do not get
//! consecutive codes, and is written in base62. Because the permutation is a bijection, distinct
//! IDs always give distinct codes: no hash, no collision check, no retry loop. (The one exception
//! is a custom alias that happens to be seven base62 characters and to equal a code generated
//! later; the service skips to the next ID when the insert reports the code taken.)

use std::{ops::Range, sync::Arc};

use tokio::sync::Mutex;

use crate::{
    domain::{CODE_SPACE, Permutation, ShortCode},
    store::{LinkStore, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("every generated code has been handed out")]
    Exhausted,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct CodeGenerator {
    store: Arc<dyn LinkStore>,
    permutation: Permutation,
    block_size: u64,
    /// The IDs of the current block not yet handed out. An async mutex because leasing the next
    /// block awaits the database; callers that arrive meanwhile wait for that block rather than
    /// each leasing one of their own.
    block: Mutex<Range<u64>>,
}

impl CodeGenerator {
    pub fn new(store: Arc<dyn LinkStore>, permutation: Permutation, block_size: u64) -> Self {
        assert!(block_size > 0, "the block size must be positive");
        Self {
            store,
            permutation,
            block_size,
            block: Mutex::new(0..0),
        }
    }

    /// A code no other call, on this instance or any other, has returned.
    pub async fn next_code(&self) -> Result<ShortCode, GenerateError> {
        let id = {
            let mut block = self.block.lock().await;
            if block.is_empty() {
                let start = self.store.lease_ids(self.block_size).await?;
                *block = start..start + self.block_size;
                tracing::debug!(start, size = self.block_size, "leased a block of link ids");
            }
            block.next().expect("the block was just refilled")
        };
        if id >= CODE_SPACE {
            return Err(GenerateError::Exhausted);
        }
        Ok(ShortCode::from_number(self.permutation.apply(id)))
    }
}
