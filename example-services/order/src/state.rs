//! What every handler shares.

use std::sync::Arc;

use service_kit::Db;

use crate::saga::Saga;

/// Shared handler state.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) db: Db,
    pub(crate) saga: Arc<Saga>,
}
